"""Hosts whose clocks disagree by two minutes: nothing is refused as busy, reaped or run twice.

A second host is a real process whose clock libfaketime (Debian's `faketime`) moves 120 s
ahead or behind; it writes heartbeats, leases and claims to the same real Redis and real
PostgreSQL this test process (the other host, its clock right) reads and judges. Before the
clocks were Redis' and the database's own, each of these failed: a worker two minutes behind
looked dead (every live session refused as busy, its queue unserved), a job touched by a host
two minutes behind was reaped by every other host and ran twice, a webhook scheduled by a host
two minutes ahead was "not due" for the sender.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from shared.db.migrate import upgrade_to_head
from shared.db.models import JobStatus, utc_now
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.stream_slots import STATE_IDLE, claim_slot, summarize_slots
from shared.worker_presence import live_workers
from tests.support.job_rows import job_row
from tests.support.servers import PostgresServer, RedisServer
from tests.support.skewed_clock import libfaketime_path, skewed_clock_env

pytestmark = pytest.mark.skipif(libfaketime_path() is None, reason="libfaketime is not installed")

SKEWS_S = (-120, 120)
STALE_AFTER_S = 60.0


def on_skewed_host(offset_s: int, code: str) -> str:
    """Run `code` in a Python process whose wall clock is `offset_s` off; returns its stdout."""
    env = skewed_clock_env(offset_s, {**os.environ, "PYTHONPATH": os.getcwd()})
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_skewed_process_really_runs_on_another_clock() -> None:
    """The premise of every test here: faketime moves Python's wall clock, not a no-op."""
    import time

    seen_s = float(on_skewed_host(-120, "import time; print(time.time())"))
    assert seen_s < time.time() - 100


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.mark.parametrize("offset_s", SKEWS_S)
def test_a_stream_worker_on_a_skewed_clock_is_claimed_not_refused_as_busy(
        redis_server: RedisServer, redis_client: redis.Redis, offset_s: int) -> None:
    worker_id = f"skewed:{uuid.uuid4().hex[:6]}"
    on_skewed_host(offset_s, f"""
        import redis
        from shared.stream_slots import heartbeat_slot
        heartbeat_slot(redis.Redis.from_url({redis_server.url!r}), {worker_id!r}, state={STATE_IDLE!r})
    """)
    assert summarize_slots(redis_client).live == 1
    claim = claim_slot(redis_client, "session-1")
    assert claim is not None and claim.worker_id == worker_id


@pytest.mark.parametrize("offset_s", SKEWS_S)
def test_a_file_worker_on_a_skewed_clock_serves_its_queue(
        redis_server: RedisServer, redis_client: redis.Redis, offset_s: int) -> None:
    on_skewed_host(offset_s, f"""
        import redis
        from shared.worker_presence import record_heartbeat
        record_heartbeat(redis.Redis.from_url({redis_server.url!r}), "skewed-worker", ["cpu"])
    """)
    assert live_workers(redis_client, "cpu") == ["skewed-worker"]


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    engine = make_engine(postgres_server.url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    upgrade_to_head(postgres_server.url)
    return postgres_server.url


def running_job(url: str) -> tuple[JobRepository, str]:
    jobs = JobRepository(make_session_factory(make_engine(url)))
    job_id = uuid.uuid4().hex
    jobs.create(job_row(job_id))
    assert jobs.transition(job_id, JobStatus.RUNNING)
    return jobs, job_id


@pytest.mark.parametrize("offset_s", SKEWS_S)
def test_a_lease_renewed_by_a_skewed_host_is_not_reaped(postgres_url: str, offset_s: int) -> None:
    """The worker that runs the job renews its lease on a clock `offset_s` off; this host's
    reaper must see a live job."""
    jobs, job_id = running_job(postgres_url)
    touched = on_skewed_host(offset_s, f"""
        from shared.db.repository import JobRepository
        from shared.db.session import make_engine, make_session_factory
        jobs = JobRepository(make_session_factory(make_engine({postgres_url!r})))
        print(jobs.touch_running({job_id!r}))
    """)
    assert touched.strip() == "True"
    assert jobs.claim_stale_running(utc_now() - timedelta(seconds=STALE_AFTER_S)) == []  # this host: right time


@pytest.mark.parametrize("offset_s", SKEWS_S)
def test_a_reaper_on_a_skewed_host_leaves_a_live_job_alone(postgres_url: str, offset_s: int) -> None:
    """The job's lease was renewed just now by a host with the right time; a reaper whose
    clock is `offset_s` off must not send it again (it would run twice)."""
    jobs, job_id = running_job(postgres_url)
    assert jobs.touch_running(job_id)
    reaped = on_skewed_host(offset_s, f"""
        from types import SimpleNamespace
        from shared.db.repository import JobRepository
        from shared.db.session import make_engine, make_session_factory
        from worker.services.reaper import requeue_stale_running
        jobs = JobRepository(make_session_factory(make_engine({postgres_url!r})))
        app = SimpleNamespace(send_task=lambda *args, **kwargs: None)  # the broker is not the point here
        ctx = SimpleNamespace(settings=SimpleNamespace(stale_job_after_s={STALE_AFTER_S}), jobs=jobs, app=app)
        print(requeue_stale_running(ctx))
    """)
    assert reaped.strip() == "[]"
    assert jobs.get(job_id).attempts == 1


@pytest.mark.parametrize("offset_s", SKEWS_S)
def test_a_webhook_scheduled_on_one_host_is_claimed_by_a_skewed_sender(postgres_url: str, offset_s: int) -> None:
    from shared.db.webhooks import WebhookRepository

    jobs = JobRepository(make_session_factory(make_engine(postgres_url)))
    job_id = uuid.uuid4().hex
    jobs.create(job_row(job_id, callback_url="https://example.invalid/hook"))
    assert jobs.transition(job_id, JobStatus.RUNNING)
    assert jobs.transition(job_id, JobStatus.SUCCEEDED)
    (delivery,) = WebhookRepository(jobs.session_factory).for_job(job_id)
    claimed = on_skewed_host(offset_s, f"""
        from shared.db.session import make_engine, make_session_factory
        from shared.db.webhooks import WebhookRepository
        webhooks = WebhookRepository(make_session_factory(make_engine({postgres_url!r})))
        claim = webhooks.claim({delivery.id!r}, hold_s=30)
        print(claim is not None)
        print(webhooks.claim({delivery.id!r}, hold_s=30) is None)
    """)
    assert claimed.split() == ["True", "True"]  # claimed once, and held against a second sender
    assert WebhookRepository(jobs.session_factory).claim(delivery.id, hold_s=30) is None
