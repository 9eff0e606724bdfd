"""The API's server model under slow and waiting clients (gevent workers, body deadlines,
per-client upload caps), and errors the HTTP server itself produces, in JSON.

Before gevent, 32 clients trickling an upload at a byte a second, or 40 synchronous
/v1/asr calls waiting for their jobs, left no gthread thread for /healthz."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support.speech import REFERENCE_SENTENCES, synthesize
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

UPLOAD_CAP = 8


#: A temp file an API process killed mid-upload left behind, before this stack started.
STALE_UPLOAD = "upload-left-by-a-killed-api"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("servermodel")
    uploads = tmp / "data" / "uploads"
    uploads.mkdir(parents=True)
    (uploads / STALE_UPLOAD).write_bytes(b"half an upload")
    two_hours_ago_s = time.time() - 7200
    os.utime(uploads / STALE_UPLOAD, (two_hours_ago_s, two_hours_ago_s))
    with running_stack(tmp, redis_server.url, file_concurrency=1,
                       sentence_concurrency=1, upload_idle_timeout_s=3.0, upload_grace_s=3.0,
                       upload_min_bytes_per_s=1000, max_concurrent_uploads_per_client=UPLOAD_CAP) as stack:
        yield stack


def raw_request(stack: Stack, head: bytes, source_ip: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", stack.settings.port), timeout=30, source_address=(source_ip, 0))
    sock.sendall(head)
    return sock


def _content_length(head: bytes) -> int:
    return int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-length")), b"0"))


def read_response(sock: socket.socket) -> tuple[int, dict]:
    """The first response on the socket (a pipelined second one, if any, is ignored)."""
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
            head, separator, body = data.partition(b"\r\n\r\n")
            if separator and len(body) >= _content_length(head):
                break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body[:_content_length(head)] or b"{}")


def slow_upload_head(stack: Stack, length: int = 100_000) -> bytes:
    return (f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{stack.settings.port}\r\n"
            f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {length}\r\n\r\n"
            "--xyz\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\n").encode()


def healthz_ok(stack: Stack) -> bool:
    return requests.get(stack.url("/healthz"), timeout=5).status_code == 200


def test_sixty_four_trickling_uploads_leave_healthz_answering(stack: Stack) -> None:
    stop = threading.Event()
    sockets = [raw_request(stack, slow_upload_head(stack), source_ip=f"127.0.0.{2 + i // UPLOAD_CAP}")
               for i in range(64)]

    def trickle() -> None:
        while not stop.wait(1.0):
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"\0")

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    try:
        for _ in range(10):
            assert healthz_ok(stack)
            time.sleep(0.1)
    finally:
        stop.set()
        feeder.join()
    statuses = {read_response(sock)[0] for sock in sockets}
    assert statuses == {408}, "a trickle below the minimum rate is cut off after the grace period"
    for sock in sockets:
        sock.close()


def test_a_stalled_upload_is_answered_408_in_json(stack: Stack) -> None:
    sock = raw_request(stack, slow_upload_head(stack))
    started_s = time.monotonic()
    status, body = read_response(sock)
    sock.close()
    assert status == 408 and "upload" in body["error"]
    assert time.monotonic() - started_s < 30
    assert not list((Path(stack.settings.data_dir) / "uploads").glob("upload-*"))


def test_uploads_past_the_per_client_cap_get_429(stack: Stack) -> None:
    held = [raw_request(stack, slow_upload_head(stack), source_ip="127.0.0.200") for _ in range(UPLOAD_CAP)]

    def cap_reached() -> bool:
        """A whole one-byte body from the same address: answered at once, so it holds no slot
        for long, and 429 once the API counts every held upload."""
        probe = raw_request(stack, slow_upload_head(stack, length=1).partition(b"\r\n\r\n")[0] + b"\r\n\r\nx",
                            source_ip="127.0.0.200")
        with probe:
            return read_response(probe)[0] == 429

    wait_until(cap_reached, f"the API to count the {UPLOAD_CAP} held uploads", timeout_s=60, interval_s=0.2)
    extra = raw_request(stack, slow_upload_head(stack), source_ip="127.0.0.200")
    status, body = read_response(extra)
    assert status == 429 and "too many uploads" in body["error"]
    preamble_bytes = len(slow_upload_head(stack).partition(b"\r\n\r\n")[2])
    other_client = raw_request(stack, slow_upload_head(stack, length=preamble_bytes + 10), source_ip="127.0.0.201")
    other_client.sendall(b"\0" * 10)
    assert read_response(other_client)[0] != 429, "the cap is per client address"
    # The held uploads were never refused themselves: each ends at its body deadline (408).
    assert {read_response(sock)[0] for sock in held} == {408}
    for sock in [*held, extra, other_client]:
        sock.close()


def test_forty_waiting_synchronous_calls_leave_healthz_answering(stack: Stack, speech_dir: Path) -> None:
    clip = synthesize(REFERENCE_SENTENCES[4], speech_dir / "servermodel-sentence.wav")

    def call() -> int:
        with clip.open("rb") as audio:
            return requests.post(stack.url("/v1/asr"), files={"audio": audio}, data={"mode": "sentence"},
                                 timeout=300).status_code

    jobs_before = requests.get(stack.url("/v1/jobs"), timeout=30).json()["total"]
    with ThreadPoolExecutor(max_workers=40) as pool:
        futures = [pool.submit(call) for _ in range(40)]
        # Every call has submitted its job and waits for it (or, on a slow machine, some are done).
        wait_until(lambda: all(f.done() for f in futures) or requests.get(
            stack.url("/v1/jobs"), timeout=30).json()["total"] >= jobs_before + 40,
            "the 40 calls to be waiting for their jobs", timeout_s=120, interval_s=0.2)
        answered = 0
        while not all(f.done() for f in futures):
            assert healthz_ok(stack)
            answered += 1
            time.sleep(0.2)
        assert [f.result() for f in futures] == [200] * 40
    assert answered > 0, "the jobs finished before /healthz was asked: the test proved nothing"


def test_errors_of_the_http_server_itself_are_json(stack: Stack) -> None:
    sock = raw_request(stack, b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    status, body = read_response(sock)
    sock.close()
    assert status == 414 and body["error"]
    sock = raw_request(stack, b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
    status, body = read_response(sock)
    sock.close()
    assert status == 400 and body["error"]


def test_upload_temp_files_left_by_a_killed_api_are_swept_at_start(stack: Stack) -> None:
    assert not (Path(stack.settings.data_dir) / "uploads" / STALE_UPLOAD).exists()
