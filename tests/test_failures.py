"""Failure paths through real processes: a worker killed mid-job, Redis going away, huge
uploads, cancellation of a running job. Each ends in a clear answer and a live service."""

from __future__ import annotations

import http.client
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from shared.celery_factory import PUBLISH_WAITS
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording, synthesize
from tests.support.stack import Stack, running_stack, wait_for_job
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, own_redis) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("failstack"), own_redis.url, file_concurrency=1,
                       sentence_concurrency=1, max_upload_bytes=64 * 1024 * 1024, enqueue_timeout_s=4.5) as running:
        yield running


@pytest.fixture(scope="module")
def long_recording(speech_dir: Path) -> Path:
    return make_long_recording(REFERENCE_SENTENCES * 2, speech_dir / "long.wav", gap_s=1.0)


@pytest.fixture(scope="module")
def short_clip(speech_dir: Path) -> Path:
    return synthesize(REFERENCE_SENTENCES[0], speech_dir / "short.wav")


def submit(stack: Stack, path: Path, **fields: str) -> str:
    with path.open("rb") as audio:
        response = requests.post(stack.url("/v1/jobs"), files={"audio": audio}, data=fields, timeout=60)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_running(stack: Stack, job_id: str, timeout_s: float = 60.0) -> dict:
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        job = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
        if job["status"] == "running" and job["worker"]:
            return job
        assert job["status"] == "queued", job
        time.sleep(0.02)
    raise TimeoutError(job_id)


def test_sigkill_of_the_worker_child_mid_job_still_ends_in_one_success(stack: Stack, long_recording: Path) -> None:
    job_id = submit(stack, long_recording)
    running = wait_running(stack, job_id)
    child_pid = int(running["worker"].rsplit(":", 1)[1])
    os.kill(child_pid, signal.SIGKILL)
    job = wait_for_job(stack, job_id, timeout_s=240)
    assert job["status"] == "succeeded", job
    assert job["attempts"] >= 2
    assert job["worker"] != running["worker"]
    transcripts = list((Path(stack.settings.storage_local_dir) / "transcripts").glob(f"{job_id}*"))
    assert len(transcripts) == 1
    # The worker's parent replaced the child and keeps serving.
    assert stack.processes["worker-file"].poll() is None


def test_canceling_a_running_job_stops_it_and_the_worker_lives_on(stack: Stack, long_recording: Path,
                                                                   short_clip: Path) -> None:
    job_id = submit(stack, long_recording)
    wait_running(stack, job_id)
    assert requests.delete(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()["status"] == "canceled"
    # The file worker runs one job at a time: once the next job has succeeded, the worker is
    # done with the canceled one, and whatever it did at the end is there to be seen.
    assert wait_for_job(stack, submit(stack, short_clip), timeout_s=240)["status"] == "succeeded"
    job = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
    assert job["status"] == "canceled"
    assert not list((Path(stack.settings.storage_local_dir) / "audio").glob(job_id))
    assert not list((Path(stack.settings.storage_local_dir) / "transcripts").glob(f"{job_id}*"))


def test_a_declared_2_gb_upload_is_refused_before_it_is_read(stack: Stack) -> None:
    connection = http.client.HTTPConnection(stack.settings.host, stack.settings.port, timeout=30)
    connection.putrequest("POST", "/v1/jobs")
    connection.putheader("Content-Type", "multipart/form-data; boundary=xyz")
    connection.putheader("Content-Length", str(2 * 1024**3))
    connection.endheaders()
    connection.send(b"--xyz\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\n")
    response = connection.getresponse()
    assert response.status == 413
    assert b"limit" in response.read()
    connection.close()
    assert requests.get(stack.url("/healthz"), timeout=10).status_code == 200


def test_an_endless_chunked_upload_is_cut_off_at_the_limit(stack: Stack) -> None:
    sent_bytes = 0

    def body() -> Iterator[bytes]:
        nonlocal sent_bytes
        yield b"--xyz\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\n"
        chunk = bytes(1024 * 1024)
        while sent_bytes < 2 * 1024**3:
            sent_bytes += len(chunk)
            yield chunk

    try:
        response = requests.post(stack.url("/v1/jobs"), data=body(), timeout=60,
                                 headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        assert response.status_code == 413
    except requests.ConnectionError:
        pass  # the server closed the connection after answering 413 mid-upload
    assert sent_bytes < 512 * 1024 * 1024, "the server read far past the limit"
    assert requests.get(stack.url("/healthz"), timeout=10).status_code == 200
    leftovers = list((Path(stack.settings.data_dir) / "uploads").glob("*"))
    assert leftovers == []


def test_redis_outage_gives_503_then_the_service_recovers(stack: Stack, own_redis, short_clip: Path) -> None:  # type: ignore[no-untyped-def]
    own_redis.stop()
    try:
        started_s = time.monotonic()
        with short_clip.open("rb") as audio:
            response = requests.post(stack.url("/v1/jobs"), files={"audio": audio}, timeout=60)
        assert response.status_code == 503, response.text
        assert "queue" in response.json()["error"]
        assert time.monotonic() - started_s < 30
        assert requests.get(stack.url("/readyz"), timeout=30).status_code == 503
        assert requests.get(stack.url("/healthz"), timeout=10).status_code == 200
    finally:
        own_redis.start()
    redis.Redis.from_url(own_redis.url).ping()
    stack.wait_ready(("cpu",), timeout_s=90)
    assert wait_for_job(stack, submit(stack, short_clip), timeout_s=120)["status"] == "succeeded"


def test_a_frozen_redis_gives_503_within_the_enqueue_timeout(stack: Stack, own_redis, short_clip: Path) -> None:  # type: ignore[no-untyped-def]
    assert own_redis.process is not None
    jobs_before = requests.get(stack.url("/v1/jobs"), timeout=10).json()["total"]
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        started_s = time.monotonic()
        with short_clip.open("rb") as audio:
            response = requests.post(stack.url("/v1/jobs"), files={"audio": audio}, timeout=60)
        elapsed_s = time.monotonic() - started_s
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    assert response.status_code == 503, response.text
    assert "queue" in response.json()["error"]
    # Bounded by the enqueue timeout, not by the socket timeout once per wait of a publish
    # (PUBLISH_WAITS x the budget): the bound sits halfway between the two.
    assert elapsed_s < stack.settings.enqueue_timeout_s * (PUBLISH_WAITS + 1) / 2, elapsed_s
    # The refused job is recorded as failed, never left queued.
    jobs = requests.get(stack.url("/v1/jobs"), params={"limit": 1}, timeout=10).json()
    assert jobs["total"] == jobs_before + 1 and jobs["jobs"][0]["status"] == "failed"
    stack.wait_ready(("cpu",), timeout_s=90)
    assert wait_for_job(stack, submit(stack, short_clip), timeout_s=120)["status"] == "succeeded"


def test_progress_is_reported_while_a_long_job_runs(stack: Stack, long_recording: Path) -> None:
    job_id = submit(stack, long_recording)
    seen: list[float] = []
    deadline_s = time.monotonic() + 120
    while time.monotonic() < deadline_s:
        job = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
        if job["status"] == "running":
            seen.append(job["progress"])
        if job["status"] in {"succeeded", "failed", "canceled"}:
            break
        time.sleep(0.1)
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    assert any(0.0 < value < 1.0 for value in seen), seen
    assert seen == sorted(seen)


def test_a_client_that_drops_mid_upload_leaves_nothing_behind(stack: Stack) -> None:
    import socket

    jobs_before = requests.get(stack.url("/v1/jobs"), timeout=10).json()["total"]
    with socket.create_connection((stack.settings.host, stack.settings.port), timeout=10) as sock:
        head = (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
                b"Content-Length: 10000000\r\n\r\n"
                b"--xyz\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\n")
        sock.sendall(head + bytes(1024 * 1024))
    uploads = Path(stack.settings.data_dir) / "uploads"
    wait_until(lambda: not list(uploads.glob("*")), "the dropped upload's temp file to be removed", timeout_s=60)
    assert requests.get(stack.url("/healthz"), timeout=10).status_code == 200
    assert requests.get(stack.url("/v1/jobs"), timeout=10).json()["total"] == jobs_before
