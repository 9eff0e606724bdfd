"""Live sessions when processes die: a stream worker SIGKILLed, the API SIGKILLed, Redis
restarted. Real processes, a Redis of this module's own (it is restarted here)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile

from shared.cli import commands
from tests.support.live_sessions import read_messages, resume_and_finish, three_sentence_pcm
from tests.support.servers import RedisServer
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_until
from tests.support.ws_clients import oddasr_session, open_ws

pytestmark = pytest.mark.integration

#: The API gives up on a silent worker after this (the issue's bound is 2 s).
WORKER_TIMEOUT_S = 1.5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, own_redis: RedisServer) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("streamfaults"), own_redis.url, file_concurrency=1,
                       sentence_concurrency=1, stream_idle_timeout_s=2.0, stream_slot_wait_s=2.0,
                       stream_worker_timeout_s=WORKER_TIMEOUT_S, stream_api_timeout_s=2.0) as stack:
        stack.start_stream_workers(1)
        stack.wait_stream_slots(1)
        yield stack


@pytest.fixture(scope="module")
def pcm(speech_dir: Path) -> bytes:
    return three_sentence_pcm(speech_dir)


class LiveClient:
    """An OddASR session fed in the background at twice real time, recording what arrives."""

    def __init__(self, url: str, pcm: bytes) -> None:
        self.ws = open_ws(url).__enter__()  # closed by close(); the test owns its lifetime
        self.ws.send(json.dumps({"name": "StartTranscription", "message_id": "", "token": "", "task_id": ""}))
        begin = json.loads(self.ws.recv(timeout=20))
        assert begin["header"]["status"] == 0
        self.job_id = begin["header"]["task_id"]
        self.messages: list[tuple[float, dict]] = []
        self.closed_at_s: float | None = None
        self._pcm = pcm
        threading.Thread(target=self._send, daemon=True).start()
        threading.Thread(target=self._read, daemon=True).start()

    def _send(self) -> None:
        try:
            for offset in range(0, len(self._pcm), 6400):
                self.ws.send(self._pcm[offset:offset + 6400])
                time.sleep(0.1)
            while True:  # then silence, so the session stays open until the test acts
                self.ws.send(b"\0" * 6400)
                time.sleep(0.2)
        except Exception:
            return

    def _read(self) -> None:
        try:
            while True:
                self.messages.append((time.monotonic(), json.loads(self.ws.recv(timeout=120))))
        except Exception:
            self.closed_at_s = time.monotonic()

    def wait_for(self, predicate, timeout_s: float = 60.0) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
        deadline_s = time.monotonic() + timeout_s
        while time.monotonic() < deadline_s:
            for at_s, message in list(self.messages):
                if predicate(message):
                    return at_s, message
            time.sleep(0.05)
        raise TimeoutError(f"no such message; got {[m for _, m in self.messages]}")

    def close(self) -> None:
        self.ws.close()


def is_final(message: dict) -> bool:
    return message["header"]["name"] == "SentenceEnd" and message["payload"]["result"] not in ("", "END")


def job(stack: Stack, job_id: str, until=lambda j: j["status"] != "running", timeout_s: float = 60.0) -> dict:  # type: ignore[no-untyped-def]
    deadline_s = time.monotonic() + timeout_s
    while True:
        body = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
        if until(body) or time.monotonic() > deadline_s:
            return body
        time.sleep(0.2)


def stream_child_pid(stack: Stack) -> int:
    """The one live stream worker process (a slot that beat in the last 3 s; it beats every
    second). Polled: on a busy machine one beat can come late, or a killed one's slot linger."""

    def live_slots() -> list[dict]:
        slots = [s for s in stack.stream_slots().values() if time.time() - s["heartbeat_s"] < 3]
        return slots if len(slots) == 1 else []

    [slot] = wait_until(live_slots, "exactly one live stream worker slot", timeout_s=60, interval_s=0.2)
    return int(slot["pid"])


def test_a_killed_stream_worker_ends_the_session_with_an_error_within_two_seconds(stack: Stack, pcm: bytes) -> None:
    client = LiveClient(f"ws://127.0.0.1:{stack.settings.ws_port}/v1/asr", pcm)
    client.wait_for(is_final)  # one sentence is done and stored
    child_pid = stream_child_pid(stack)
    killed_s = time.monotonic()
    os.kill(child_pid, signal.SIGKILL)
    at_s, error = client.wait_for(lambda m: m["header"]["status"] != 0, timeout_s=60)
    client.close()
    # The API acts on its worker timeout (1.5 s; the bound is 2 s, a latency goal that
    # a busy machine cannot keep): the bound only tells that from never noticing, with margin.
    assert at_s - killed_s < WORKER_TIMEOUT_S * 4, f"the client heard of the dead worker after {at_s - killed_s:.1f} s"
    assert error["header"]["status"] == 20020002 and error["header"]["status_text"]
    body = job(stack, client.job_id)
    assert body["status"] == "failed" and "worker" in body["error"]
    assert len(body["result"]["segments"]) >= 1, "the finished sentence is kept"
    stack.wait_stream_slots(1, timeout_s=120)  # the supervisor started another process: the slot is back


def test_a_stopping_stream_worker_ends_its_session_at_once_keeping_its_sentences(stack: Stack, pcm: bytes) -> None:
    client = LiveClient(f"ws://127.0.0.1:{stack.settings.ws_port}/v1/asr", pcm)
    client.wait_for(is_final)
    os.kill(stream_child_pid(stack), signal.SIGTERM)  # a deploy, a scale-down: not a crash
    _, error = client.wait_for(lambda m: m["header"]["status"] != 0, timeout_s=60)
    client.close()
    # "At once" is in the reason, not a stopwatch: a session that waited out the API's worker
    # timeout instead would end saying the worker was lost, not that it is shutting down.
    assert "shutting down" in error["header"]["status_text"]
    body = job(stack, client.job_id)
    assert body["status"] == "failed" and "shutting down" in body["error"]
    assert body["result"]["segments"]
    stack.wait_stream_slots(1, timeout_s=120)


def test_a_session_outlives_its_api_process_killed_and_the_client_resumes_through_a_new_one(
        stack: Stack, pcm: bytes) -> None:
    """A crash or a deploy of the API process: its worker holds the session as if the client's
    network had dropped; the client reconnects to the restarted API and loses nothing."""
    url = f"ws://127.0.0.1:{stack.settings.port}/v1/stream"
    received: list[dict] = []
    ws = open_ws(url)
    ws.send(json.dumps({"type": "Start", "language": "en"}))
    begin = json.loads(ws.recv(timeout=30))
    reader = threading.Thread(target=read_messages, args=(ws, received), daemon=True)
    reader.start()
    half = len(pcm) // 2 // 2 * 2
    for offset in range(0, half, 6400):
        ws.send(pcm[offset:min(offset + 6400, half)])
        time.sleep(0.1)
    deadline_s = time.monotonic() + 60
    while not any(m["type"] == "Final" for m in received):
        assert time.monotonic() < deadline_s, received
        time.sleep(0.1)
    stack.stop("api", sig=signal.SIGKILL)
    reader.join(timeout=5)
    stack.spawn("api", commands.api_argv(stack.settings))
    stack.wait_ready((stack.settings.file_queue,))
    assert job(stack, begin["job_id"], timeout_s=0)["status"] == "running", "the worker still holds it"

    resumed, _ = resume_and_finish(url, begin, pcm, received)
    assert 0 < resumed["audio_received_bytes"] <= half
    assert received[-1]["type"] == "Summary", received[-3:]
    indexes = [m["index"] for m in received if m["type"] == "Final"]
    assert indexes == list(range(len(indexes))) and len(indexes) >= 3, f"each final once, in order: {indexes}"
    body = job(stack, begin["job_id"])
    assert body["status"] == "succeeded" and len(body["result"]["segments"]) == len(indexes)


def test_redis_restarted_mid_session_ends_it_clearly_and_new_sessions_work(stack: Stack, own_redis: RedisServer,
                                                                          pcm: bytes) -> None:
    client = LiveClient(f"ws://127.0.0.1:{stack.settings.ws_port}/v1/asr", pcm)
    client.wait_for(lambda m: m["header"]["name"] == "TranscriptionResultChanged")
    own_redis.stop()
    try:
        _, error = client.wait_for(lambda m: m["header"]["status"] != 0, timeout_s=60)
        assert error["header"]["status_text"]
    finally:
        own_redis.start()
    client.close()
    stack.wait_stream_slots(1, timeout_s=120)
    wav = Path(stack.settings.data_dir) / "short.wav"
    soundfile.write(wav, np.frombuffer(pcm[:5 * 32000], dtype="<i2"), 16000, subtype="PCM_16")
    log = oddasr_session(f"ws://127.0.0.1:{stack.settings.ws_port}/v1/asr", wav, chunk_bytes=32000, interval_s=0.1,
                         stop_message={"name": "STOP_SESSION_REQ", "task_id": ""})
    assert log.messages[0].data["header"]["status"] == 0
    assert log.close_code == 1000


def _running(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie its supervisor has not reaped yet has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_stream_worker_told_to_stop_while_redis_is_down_exits_without_waiting_for_redis(
        stack: Stack, own_redis: RedisServer, pcm: bytes) -> None:
    """A deploy or scale-down while Redis is away: the stopping worker gives its slot up at
    once instead of retrying the release for 30 s (a slot it cannot remove goes stale)."""
    client = LiveClient(f"ws://127.0.0.1:{stack.settings.ws_port}/v1/asr", pcm)
    client.wait_for(lambda m: m["header"]["name"] == "TranscriptionResultChanged")
    pid = stream_child_pid(stack)
    own_redis.stop()
    try:
        client.wait_for(lambda m: m["header"]["status"] != 0, timeout_s=60)
        os.kill(pid, signal.SIGTERM)
        # Well inside the 30 s that the release's retries held it for, with Redis still down.
        wait_until(lambda: not _running(pid), "the stopped stream worker to exit while Redis is down",
                   timeout_s=20, interval_s=0.1)
    finally:
        own_redis.start()
    client.close()
    stack.wait_stream_slots(1, timeout_s=120)
