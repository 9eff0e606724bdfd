"""How good the ETA is: a backlog of 20 real jobs (real Whisper tiny.en on generated speech)
on one worker process, each job's predicted finish taken when it was queued and compared
with when it really finished. The figures are printed (and quoted in the README); the test
asserts only what cannot be flaky on a shared machine: every job got an estimate, each is
positive, and positions follow submission order."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests

from tests.support.speech import REFERENCE_SENTENCES, synthesize
from tests.support.stack import Stack, running_stack, wait_for_job

pytestmark = pytest.mark.integration

BACKLOG_JOBS = 20
WARM_UP_JOBS = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, own_redis) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("eta-stack"), own_redis.url, file_concurrency=1,
                       sentence_concurrency=0) as running:
        yield running


@pytest.fixture(scope="module")
def clips(speech_dir: Path) -> list[Path]:
    return [synthesize(sentence, speech_dir / f"eta-{index}.wav") for index, sentence in enumerate(REFERENCE_SENTENCES)]


def post(stack: Stack, path: Path) -> dict:
    with path.open("rb") as audio:
        response = requests.post(stack.url("/v1/jobs"), files={"audio": (path.name, audio)}, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()


def test_predicted_finish_of_a_backlog_of_20_against_the_actual(stack: Stack, clips: list[Path],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    queues = requests.get(stack.url("/v1/queues"), timeout=10).json()["queues"]
    assert queues["cpu"]["processes"] == 1 and queues["cpu"]["real_time_factor"] is None
    for index in range(WARM_UP_JOBS):  # the queue measures its speed on these
        assert wait_for_job(stack, post(stack, clips[index % len(clips)])["id"])["status"] == "succeeded"
    predicted: dict[str, float] = {}
    submitted: dict[str, float] = {}
    for index in range(BACKLOG_JOBS):
        job_id = post(stack, clips[index % len(clips)])["id"]
        now_s = time.time()
        polled = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
        assert polled["estimated_finish_s"] is not None, polled  # measured queue, live worker: an estimate
        assert polled["estimated_finish_s"] > 0 or polled["status"] != "queued", polled
        if polled["status"] == "queued":
            assert polled["queue_position"] >= 0 and polled["estimated_start_s"] >= 0
        submitted[job_id] = now_s
        predicted[job_id] = now_s + polled["estimated_finish_s"]
    snapshot = [requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json() for job_id in predicted]
    positions = [job["queue_position"] for job in snapshot if job["status"] == "queued"]
    assert positions == sorted(positions)  # submission order is queue order (jobs ahead may start meanwhile)

    errors_s, relative = [], []
    for job_id, predicted_s in predicted.items():
        job = wait_for_job(stack, job_id, timeout_s=300)
        assert job["status"] == "succeeded", job
        actual_s = datetime.fromisoformat(job["finished_at"]).timestamp()
        errors_s.append(actual_s - predicted_s)
        relative.append(abs(actual_s - predicted_s) / max(actual_s - submitted[job_id], 1e-3))
    absolute = [abs(e) for e in errors_s]
    queues = requests.get(stack.url("/v1/queues"), timeout=10).json()["queues"]
    line = (f"ETA accuracy, {BACKLOG_JOBS} jobs on 1 worker process (RTF measured"
          f" {queues['cpu']['real_time_factor']}, drain {queues['cpu']['drain_jobs_per_s']} jobs/s):"
          f" predicted-vs-actual finish error median {statistics.median(absolute):.2f} s,"
          f" max {max(absolute):.2f} s, mean signed {statistics.mean(errors_s):+.2f} s (late is +);"
          f" relative to the job's wait median {statistics.median(relative):.1%}, max {max(relative):.1%}")
    with capsys.disabled():  # the figures are the test's report: shown even when it passes
        sys.stdout.write(f"\n{line}\n")


def test_a_worker_node_tells_its_processes(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    """The heartbeat carries the node's concurrency (prefork children), so estimates divide
    the backlog among the processes that really run jobs at once."""
    with running_stack(tmp_path, redis_server.url, file_concurrency=2, sentence_concurrency=0) as two:
        queues = requests.get(two.url("/v1/queues"), timeout=10).json()["queues"]
    assert (queues["cpu"]["workers"], queues["cpu"]["processes"]) == (1, 2)
