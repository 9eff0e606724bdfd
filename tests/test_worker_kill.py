"""A worker killed whole (main process and pool child, SIGKILL) mid-job: with the default
settings its job is finished by a new worker within minutes, not after Redis' visibility
timeout. The job's lease (a row touched every stale_job_after_s / 4) goes quiet, and a live
worker's reaper claims the job and sends it again."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from shared.config import Settings
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from tests.support.stack import Stack, running_stack, wait_for_job

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

DEFAULTS = Settings()
#: The job is stale after stale_job_after_s, seen at the next reaper pass, then run again.
RECOVERY_BOUND_S = DEFAULTS.stale_job_after_s + 2 * DEFAULTS.reaper_interval_s + 60.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    # Default lease and reaper settings: only the test plumbing is set.
    with running_stack(tmp_path_factory.mktemp("workerkill"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=0) as running:
        assert running.settings.stale_job_after_s == DEFAULTS.stale_job_after_s
        assert running.settings.reaper_interval_s == DEFAULTS.reaper_interval_s
        yield running


def test_a_worker_killed_whole_mid_job_has_its_job_finished_within_minutes(stack: Stack, speech_dir: Path) -> None:
    recording = make_long_recording(REFERENCE_SENTENCES * 2, speech_dir / "long.wav", gap_s=1.0)
    with recording.open("rb") as audio:
        response = requests.post(stack.url("/v1/jobs"), files={"audio": audio}, timeout=60)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline_s = time.monotonic() + 60
    while requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()["status"] != "running":
        assert time.monotonic() < deadline_s, "the job never started"
        time.sleep(0.05)
    stack.stop("worker-file", sig=signal.SIGKILL)  # the whole process group: main and child
    killed_s = time.monotonic()
    assert requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()["status"] == "running"
    stack.start_worker("file", [stack.settings.file_queue], 1)  # what a supervisor does
    job = wait_for_job(stack, job_id, timeout_s=RECOVERY_BOUND_S)
    recovery_s = time.monotonic() - killed_s
    logger.info("a job whose worker was SIGKILLed whole finished %.0f s after the kill (defaults)", recovery_s)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2, job
    assert recovery_s < RECOVERY_BOUND_S
