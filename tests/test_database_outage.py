"""PostgreSQL going away under a running deployment: the API answers 503 with a reason (never
a 500 or a hang), readiness says why, and once the database is back a job submitted then
completes; a job caught by the outage in the worker is retried, not lost."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.servers import PostgresServer, run_postgres
from tests.support.speech import REFERENCE_SENTENCES, synthesize
from tests.support.stack import Stack, running_stack, wait_for_job
from tests.support.waiting import wait_until
from tests.support.ws_clients import open_ws

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = run_postgres(tmp_path_factory.mktemp("pg-outage"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server, own_postgres: PostgresServer) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("pg-stack"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=0, database_url=own_postgres.url) as running:
        yield running


def test_database_outage_is_a_503_and_the_service_recovers(stack: Stack, own_postgres: PostgresServer,
                                                          speech_dir: Path) -> None:
    clip = synthesize(REFERENCE_SENTENCES[2], speech_dir / "pg-outage.wav")
    own_postgres.stop()
    try:
        with clip.open("rb") as audio:
            response = requests.post(stack.url("/v1/jobs"), files={"audio": audio}, timeout=60)
        assert response.status_code == 503, response.text
        assert "database" in response.json()["error"]
        listing = requests.get(stack.url("/v1/jobs"), timeout=60)
        assert listing.status_code == 503 and "database" in listing.json()["error"]
        ready = requests.get(stack.url("/readyz"), timeout=60)
        assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok"
        assert not list((Path(stack.settings.storage_local_dir) / "audio").glob("*")), "audio left behind"
        # A client continuing a live session is told in its own protocol, not dropped with 1011.
        with open_ws(f"ws://127.0.0.1:{stack.settings.ws_port}/") as ws:
            ws.send(json.dumps({"name": "StartTranscription", "message_id": "m", "token": "",
                                "task_id": uuid.uuid4().hex}))
            header = json.loads(ws.recv(timeout=60))["header"]
        assert header["status"] == 20020004 and "database" in header["status_text"], header
    finally:
        own_postgres.start()
    deadline_s = time.monotonic() + 120
    while requests.get(stack.url("/readyz"), timeout=30).status_code != 200:
        assert time.monotonic() < deadline_s
        time.sleep(0.5)
    with clip.open("rb") as audio:
        job_id = requests.post(stack.url("/v1/jobs"), files={"audio": audio}, timeout=60).json()["id"]
    assert wait_for_job(stack, job_id)["status"] == "succeeded"


def test_a_job_running_when_the_database_fails_is_retried_to_success(stack: Stack, own_postgres: PostgresServer,
                                                                    speech_dir: Path) -> None:
    from tests.support.speech import make_long_recording

    long_clip = make_long_recording(REFERENCE_SENTENCES * 2, speech_dir / "pg-long.wav", gap_s=1.0)
    with long_clip.open("rb") as audio:
        job_id = requests.post(stack.url("/v1/jobs"), files={"audio": audio}, timeout=60).json()["id"]
    deadline_s = time.monotonic() + 120
    while requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()["status"] != "running":
        assert time.monotonic() < deadline_s
        time.sleep(0.05)
    own_postgres.stop()
    try:
        # The worker's next progress write fails: the task is retried with backoff.
        wait_until(lambda: any(job_id in line and "retry" in line.lower()
                               for line in stack.log_tail("worker-file", 10**6).splitlines()),
                   "the worker to meet the outage and schedule a retry", timeout_s=120, interval_s=0.2)
    finally:
        own_postgres.start()
    job = wait_for_job(stack, job_id, timeout_s=180)
    assert job["status"] == "succeeded", job
    assert job["attempts"] >= 2
    assert "retry" in stack.log_tail("worker-file", 400).lower()
