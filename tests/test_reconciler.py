"""The reconciler: jobs the database holds as `queued` but no queue will deliver (the message
was lost with Redis, or sits reserved by a worker that died) are sent again, claimed once;
jobs whose message is still waiting in the queue are left alone."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import update

from shared.celery_factory import make_celery
from shared.config import Settings
from shared.db.migrate import upgrade_to_head
from shared.db.models import Job, JobStatus, utc_now
from shared.db.repository import JobRepository
from shared.db.retention import RetentionRepository
from shared.db.session import make_engine, make_session_factory
from shared.jobs.keys import audio_key
from shared.reprocess import reprocess_job_id
from shared.schemas import TRANSCRIBE_TASK_NAME
from shared.storage import make_storage
from tests.support.job_rows import job_row
from tests.test_reprocess_sweep import run_reprocess_task, take_reprocess_tasks
from worker.services.reaper import (
    ReconcileContext,
    fail_silent_streams,
    queue_owed_reprocessing,
    reconcile,
    requeue_stalled_queued,
)

#: A database of its own on the session's redis-server, so other modules' queues stay apart.
REDIS_DB = 7


@pytest.fixture
def context(tmp_path: Path, redis_server) -> Iterator[ReconcileContext]:  # type: ignore[no-untyped-def]
    url = redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    settings = Settings(data_dir=tmp_path, redis_url=url, requeue_queued_after_s=30.0)
    upgrade_to_head(settings.database_url)
    engine = make_engine(settings.database_url)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield ReconcileContext(settings=settings, jobs=JobRepository(make_session_factory(engine)),
                           app=make_celery(settings), redis=client)
    client.flushdb()
    engine.dispose()


def queued_job(ctx: ReconcileContext, waited_s: float, queue: str = "gpu", mode: str = "file") -> str:
    job_id = uuid.uuid4().hex
    ctx.jobs.create(job_row(job_id, mode=mode, queue=queue, audio_key=audio_key(job_id)))
    engine = make_engine(ctx.settings.database_url)
    with engine.begin() as connection:
        old = utc_now() - timedelta(seconds=waited_s)
        connection.execute(update(Job).where(Job.id == job_id).values(created_at=old, updated_at=old))
    engine.dispose()
    return job_id


def messages_for(ctx: ReconcileContext, queue: str, job_id: str) -> int:
    return sum(job_id.encode() in raw for raw in ctx.redis.lrange(queue, 0, -1))


def test_a_queued_job_whose_message_was_lost_is_sent_again_once(context: ReconcileContext) -> None:
    job_id = queued_job(context, waited_s=120)
    assert requeue_stalled_queued(context) == [job_id]
    assert messages_for(context, "gpu", job_id) == 1
    # Sent again, it waits in the queue: the next rounds leave it there.
    assert requeue_stalled_queued(context) == []
    assert messages_for(context, "gpu", job_id) == 1
    assert context.jobs.get(job_id).status == JobStatus.QUEUED


def test_a_job_waiting_behind_a_backlog_is_not_sent_twice(context: ReconcileContext) -> None:
    job_id = queued_job(context, waited_s=3600)
    context.app.send_task(TRANSCRIBE_TASK_NAME, args=[job_id], queue="gpu", task_id=job_id)
    assert requeue_stalled_queued(context) == []
    assert messages_for(context, "gpu", job_id) == 1


def test_young_queued_jobs_and_live_session_jobs_are_left_alone(context: ReconcileContext) -> None:
    queued_job(context, waited_s=5)
    queued_job(context, waited_s=600, mode="stream")
    assert requeue_stalled_queued(context) == []


def reserve(ctx: ReconcileContext, job_id: str, reserved_ago_s: float) -> None:
    """Put the job's message where kombu keeps a message a worker took but never acknowledged."""
    ctx.app.send_task(TRANSCRIBE_TASK_NAME, args=[job_id], queue="gpu", task_id=job_id)
    raw = ctx.redis.rpop("gpu")
    assert raw is not None
    tag = uuid.uuid4().hex
    ctx.redis.hset("unacked", tag, json.dumps([json.loads(raw), "", "gpu"]))
    ctx.redis.zadd("unacked_index", {tag: time.time() - reserved_ago_s})


def test_a_message_reserved_by_a_worker_that_died_is_sent_again(context: ReconcileContext) -> None:
    stuck = queued_job(context, waited_s=600)
    reserve(context, stuck, reserved_ago_s=500)
    just_taken = queued_job(context, waited_s=600)
    reserve(context, just_taken, reserved_ago_s=0.5)  # its worker is about to start it
    assert requeue_stalled_queued(context) == [stuck]


def test_concurrent_reconcilers_send_a_stalled_job_once(context: ReconcileContext) -> None:
    job_id = queued_job(context, waited_s=120)
    results: list[list[str]] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        results.append(context.jobs.claim_stale_queued(utc_now() - timedelta(seconds=30), [job_id]))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(len(claimed) for claimed in results) == 1
    with pytest.raises(ValueError, match="past"):
        context.jobs.claim_stale_queued(utc_now() + timedelta(seconds=5), [job_id])


def test_one_failing_sweep_does_not_stop_the_others(context: ReconcileContext) -> None:
    def broken(_ctx: ReconcileContext) -> list[str]:
        raise RuntimeError("boom")

    def fine(_ctx: ReconcileContext) -> list[str]:
        return ["x"]

    assert reconcile(context, {"broken": broken, "fine": fine}) == {"broken": [], "fine": ["x"]}


def test_a_live_session_nobody_holds_any_more_is_failed_keeping_its_sentences(context: ReconcileContext) -> None:
    """Its worker and the API both died: neither can end the job, so the reconciler does."""
    silent, live = (uuid.uuid4().hex for _ in range(2))
    for job_id in (silent, live):
        context.jobs.create(job_row(job_id, mode="stream", attempts=1))
    context.jobs.add_stream_segment(silent, 0, 0, 1500, "Hello there.")
    engine = make_engine(context.settings.database_url)
    with engine.begin() as connection:
        old = utc_now() - timedelta(seconds=context.settings.stale_job_after_s + 30)
        connection.execute(update(Job).where(Job.id == silent).values(updated_at=old))
    engine.dispose()
    assert fail_silent_streams(context) == [silent]
    assert context.jobs.get(silent).status == JobStatus.FAILED
    assert "stopped answering" in (context.jobs.get(silent).error or "")
    assert [s.text for s in context.jobs.stream_segments(silent)] == ["Hello there."]
    assert context.jobs.get(live).status == JobStatus.RUNNING, "a session whose worker touches its job is alive"
    assert "live sessions nobody holds" in reconcile(context)


def ended_session(ctx: ReconcileContext, ended_s_ago: float, reprocess: str, recording: bytes = b"") -> str:
    job_id = uuid.uuid4().hex
    ctx.jobs.create(job_row(job_id, status=JobStatus.SUCCEEDED, mode="stream",
                            options={"language": "en", "hotwords": ["Brannigan"], "reprocess": reprocess},
                            audio_key=audio_key(job_id), filename="standup", duration_s=3.0, progress=1.0,
                            attempts=1, callback_url="http://127.0.0.1:9/hook", api_key_id="k1"))
    assert ctx.storage is not None
    ctx.storage.put_bytes(f"audio/{job_id}", recording or job_id.encode())
    engine = make_engine(ctx.settings.database_url)
    with engine.begin() as connection:
        connection.execute(update(Job).where(Job.id == job_id).values(
            finished_at=utc_now() - timedelta(seconds=ended_s_ago)))
    engine.dispose()
    return job_id


def test_a_session_whose_worker_died_before_queueing_its_reprocessing_gets_it_from_the_sweep(
        context: ReconcileContext) -> None:
    """The session's job was stored, then its worker died before making the file job: the
    recording in storage is enough to make it, once, and only for sessions that asked."""
    ctx = ReconcileContext(settings=context.settings, jobs=context.jobs, app=context.app, redis=context.redis,
                           storage=make_storage(context.settings))
    owed = ended_session(ctx, 120, "diarize", b"RIFF-the-recording")
    young = ended_session(ctx, 5, "offline")  # its own worker is still at it
    unasked = ended_session(ctx, 120, "none")
    already = ended_session(ctx, 120, "offline")
    ctx.jobs.create(job_row(reprocess_job_id(already), status=JobStatus.SUCCEEDED, options={"source_job_id": already},
                            source_job_id=already, progress=1.0, attempts=1))
    expired = ended_session(ctx, 120, "offline")
    RetentionRepository(ctx.jobs.session_factory).mark_expired(expired)  # past retention: nothing to redo

    child_id = reprocess_job_id(owed)
    assert queue_owed_reprocessing(ctx) == [owed], "the sweep claims the session and sends its copy task"
    assert messages_for(ctx, ctx.settings.file_queue, owed) == 1
    assert queue_owed_reprocessing(ctx) == [], "claimed: a second pass sends nothing more"
    (task,) = take_reprocess_tasks(ctx)
    assert run_reprocess_task(ctx, task) == child_id
    child = ctx.jobs.get(child_id)
    assert child.status == JobStatus.QUEUED and child.mode == "file" and child.queue == ctx.settings.file_queue
    assert child.options["diarize"] is True and child.options["source_job_id"] == owed == child.source_job_id
    assert child.options["hotwords"] == ["Brannigan"] and child.api_key_id == "k1"
    assert child.callback_url == "http://127.0.0.1:9/hook"
    assert ctx.storage is not None and ctx.storage.get_bytes(child.audio_key or "") == b"RIFF-the-recording"
    assert messages_for(ctx, ctx.settings.file_queue, child_id) == 1
    for session_id in (young, unasked, expired):
        assert ctx.jobs.find(reprocess_job_id(session_id)) is None
    assert queue_owed_reprocessing(ctx) == [], "once made, nothing is owed"
    assert messages_for(ctx, ctx.settings.file_queue, child_id) == 1
    assert "ended sessions owed their reprocessing" in reconcile(ctx)
