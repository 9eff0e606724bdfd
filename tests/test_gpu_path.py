"""The GPU worker's code path, run on the CPU (no GPU here): `enable_gpu` routes file jobs to
the `gpu` queue, a solo-pool worker with its model preloaded and batched decoding serves it,
and when it goes away file jobs fall back to the `cpu` queue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from tests.support.stack import Stack, running_stack, wait_for_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gpu_stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("gpu"), redis_server.url, file_concurrency=1, sentence_concurrency=0,
                       file_pool="solo", enable_gpu=True, whisper_batch_size=4) as stack:
        stack.start_worker("cpu", ["cpu"], 1)
        stack.wait_ready(("gpu", "cpu"))
        yield stack


def submit(stack: Stack, path: Path) -> dict:
    with path.open("rb") as audio:
        response = requests.post(stack.url("/v1/jobs"), files={"audio": audio}, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()


def test_gpu_queue_then_fallback_to_cpu(gpu_stack: Stack, speech_dir: Path) -> None:
    path = make_long_recording(REFERENCE_SENTENCES[:4], speech_dir / "gpu-path.wav", gap_s=3.5)
    created = submit(gpu_stack, path)
    assert created["queue"] == "gpu"
    job = wait_for_job(gpu_stack, created["id"])
    assert job["status"] == "succeeded", job
    assert job["worker"] and len(job["result"]["segments"]) >= 3
    gpu_stack.stop("worker-file")  # the GPU worker leaves (cleanly: its heartbeat is removed)
    deadline_s = time.monotonic() + 30
    while requests.get(gpu_stack.url("/readyz"), timeout=10).json()["queues"]["gpu"]["workers"]:
        assert time.monotonic() < deadline_s, "the stopped GPU worker still looks alive"
        time.sleep(0.5)
    fallback = submit(gpu_stack, path)
    assert fallback["queue"] == "cpu"
    assert wait_for_job(gpu_stack, fallback["id"])["status"] == "succeeded"
