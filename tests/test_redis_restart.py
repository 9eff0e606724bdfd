"""Nothing accepted is lost when Redis dies: jobs answered 202 finish although Redis was
SIGKILLed and came back empty (no persistence), and a worker that saw Redis vanish takes new
jobs afterwards. The reconciler finds jobs queued in the database whose message no queue
holds and sends them again; the threshold is compressed by configuration for the test."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from tests.support.speech import REFERENCE_SENTENCES, synthesize
from tests.support.stack import Stack, running_stack, wait_for_job

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

REQUEUE_AFTER_S = 3.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, own_redis) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("restartstack"), own_redis.url, file_concurrency=1,
                       sentence_concurrency=1, requeue_queued_after_s=REQUEUE_AFTER_S,
                       reaper_interval_s=1.0) as running:
        yield running


@pytest.fixture(scope="module")
def clip(speech_dir: Path) -> Path:
    return synthesize(REFERENCE_SENTENCES[1], speech_dir / "restart-s1.wav")


def submit(stack: Stack, clip: Path, **fields: str) -> str:
    with clip.open("rb") as audio:
        response = requests.post(stack.url("/v1/jobs"), files={"audio": audio}, data=fields, timeout=60)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_jobs_accepted_before_redis_was_killed_and_restarted_empty_all_succeed(
        stack: Stack, own_redis, clip: Path) -> None:  # type: ignore[no-untyped-def]
    stack.stop("worker-file")  # nothing takes the jobs: their messages wait in Redis only
    job_ids = [submit(stack, clip) for _ in range(3)]
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGKILL)
    own_redis.process.wait()
    own_redis.process = None
    killed_s = time.monotonic()
    own_redis.start()  # no persistence: every queued message is gone
    client = redis.Redis.from_url(own_redis.url)
    assert client.llen(stack.settings.file_queue) == 0
    stack.start_worker("file", [stack.settings.file_queue], 1)
    jobs = [wait_for_job(stack, job_id, timeout_s=180) for job_id in job_ids]
    recovery_s = time.monotonic() - killed_s
    logger.info("3 jobs accepted before Redis was SIGKILLed all succeeded %.1f s after the kill", recovery_s)
    assert [job["status"] for job in jobs] == ["succeeded"] * 3, jobs
    assert all(job["attempts"] == 1 for job in jobs), jobs  # sent again once, run once
    # The sentence worker lived through the outage: it takes new work afterwards.
    assert wait_for_job(stack, submit(stack, clip, mode="sentence"), timeout_s=120)["status"] == "succeeded"
