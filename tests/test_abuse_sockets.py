"""Sockets are bounded per client (issue 17, item 6), through a real stack: gunicorn (gevent)
API with keys required, one stream worker process with its real model, a real redis-server.

Each test opens its sockets from its own loopback source address (127.0.0.x), so the
per-address socket cap of one test never meets the sockets another test left closing.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import soundfile
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from shared.db.api_keys import ApiKeyRepository, KeyLimits
from shared.db.session import make_engine, make_session_factory
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from tests.support.stack import Stack, running_stack
from tests.support.ws_clients import funasr_session

pytestmark = pytest.mark.integration

HASH_SECRET = "test-abuse-sockets-hash-secret"
MAX_SOCKETS_PER_CLIENT = 4
KEEPALIVE_MAX_S = 3.0
IDLE_TIMEOUT_S = 2.0
EARLY_AUDIO_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("abusesockets"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=0, auth_mode="required", api_key_hash_secret=HASH_SECRET,
                       stream_idle_timeout_s=IDLE_TIMEOUT_S, stream_keepalive_max_s=KEEPALIVE_MAX_S,
                       stream_slot_wait_s=2.0, max_sockets_per_client=MAX_SOCKETS_PER_CLIENT,
                       max_live_sessions_per_key=1) as stack:
        stack.start_stream_workers(1)
        stack.wait_stream_slots(1)
        yield stack


@pytest.fixture(scope="module")
def keys(stack: Stack) -> ApiKeyRepository:
    return ApiKeyRepository(make_session_factory(make_engine(stack.settings.database_url)), HASH_SECRET.encode())


def new_key(keys: ApiKeyRepository, name: str) -> str:
    return keys.create(name, limits=KeyLimits())[1]


@pytest.fixture(scope="module")
def pcm(speech_dir: Path) -> bytes:
    wav = make_long_recording([REFERENCE_SENTENCES[1]], speech_dir / "abuse-sockets-one.wav", gap_s=0.5)
    samples, rate = soundfile.read(wav, dtype="int16")
    assert rate == 16000
    return samples.tobytes()


def native_url(stack: Stack, key: str = "") -> str:
    return f"ws://127.0.0.1:{stack.settings.port}/v1/stream" + (f"?api_key={key}" if key else "")


def open_from(url: str, source_ip: str, subprotocols: list[str] | None = None) -> ClientConnection:
    """A websocket from `source_ip` (any 127.0.0.x reaches the loopback server)."""
    return connect(url, source_address=(source_ip, 0), open_timeout=10, max_size=None,  # type: ignore[arg-type]
                   ping_interval=None, subprotocols=subprotocols)  # type: ignore[arg-type]


def send_paced(ws: ClientConnection, pcm: bytes, speed: float = 8.0, frame_bytes: int = 3200) -> None:
    for offset in range(0, len(pcm), frame_bytes):
        ws.send(pcm[offset:offset + frame_bytes])
        time.sleep(frame_bytes / 32000 / speed)


def messages_until(ws: ClientConnection, kinds: set[str], timeout_s: float = 30.0) -> list[dict]:
    received: list[dict] = []
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        message = json.loads(ws.recv(timeout=max(0.1, deadline_s - time.monotonic())))
        received.append(message)
        if message["type"] in kinds:
            return received
    raise TimeoutError(f"none of {kinds} within {timeout_s} s: {received}")


def final_job(stack: Stack, job_id: str, key: str, timeout_s: float = 30.0) -> dict:
    deadline_s = time.monotonic() + timeout_s
    while True:
        job = requests.get(stack.url(f"/v1/jobs/{job_id}"), headers={"Authorization": f"Bearer {key}"},
                           timeout=10).json()
        if job["status"] in {"succeeded", "failed", "canceled"} or time.monotonic() > deadline_s:
            return job
        time.sleep(0.2)


def free_slot(stack: Stack) -> None:
    stack.wait_stream_slots(1, timeout_s=60)


# --- sockets per client address -------------------------------------------------------------
def test_the_socket_past_the_cap_from_one_address_is_refused_while_another_address_is_admitted(
        stack: Stack) -> None:
    url = native_url(stack)
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(open_from(url, "127.0.0.10")) for _ in range(MAX_SOCKETS_PER_CLIENT)]
        with pytest.raises(InvalidStatus) as refused:
            open_from(url, "127.0.0.10")
        response = refused.value.response
        assert response.status_code == 429, response
        assert b"max_sockets_per_client" in response.body and response.headers["Retry-After"]
        with open_from(url, "127.0.0.11"):  # another address is not affected
            pass
        sockets[0].close()  # a closed socket gives its place back
        deadline_s = time.monotonic() + 20
        while True:
            try:
                held.enter_context(open_from(url, "127.0.0.10"))
                break
            except InvalidStatus:
                assert time.monotonic() < deadline_s, "the closed socket's place never came back"
                time.sleep(0.2)


# --- audio before the start message ---------------------------------------------------------
def test_no_audio_is_taken_before_the_key_is_checked(stack: Stack, keys: ApiKeyRepository, pcm: bytes) -> None:
    key = new_key(keys, "early-no-key")
    with open_from(native_url(stack), "127.0.0.20") as ws:  # the key would come in the start message
        ws.send(b"\0" * 1920)
        reply = json.loads(ws.recv(timeout=30))
    assert reply["type"] == "Error" and reply["kind"] == "unauthorized", reply
    assert "before the start message" in reply["message"] and "api_key" in reply["message"]
    free_slot(stack)
    # FunASR's clients send their config (here with the key) first, then audio: served as ever.
    log = funasr_session(f"ws://127.0.0.1:{stack.settings.funasr_ws_port}/", pcm, mode="offline",
                         realtime_factor=20.0, config={"api_key": key, "language": "en"})
    offline = log.of_mode("offline")
    assert len(offline) == 1 and offline[0]["text"].strip() and "error" not in offline[0], log.messages
    free_slot(stack)


def test_early_audio_is_kept_up_to_its_cap_and_refused_past_it(
        stack: Stack, keys: ApiKeyRepository, pcm: bytes) -> None:
    key = new_key(keys, "early-cap")
    url = native_url(stack, key)  # the key on the upgrade: checked before any frame
    with open_from(url, "127.0.0.30") as ws:  # many frames, each small, over the cap together
        for _ in range(5):
            ws.send(b"\0" * (16 * 1024))
        reply = json.loads(ws.recv(timeout=30))
    assert reply["type"] == "Error" and reply["kind"] == "frame_too_large", reply
    assert f"more than {EARLY_AUDIO_BYTES} bytes of audio before the start message" in reply["message"]
    with open_from(url, "127.0.0.30") as ws:  # one frame over the cap: not even assembled
        ws.send(b"\0" * (EARLY_AUDIO_BYTES + 40 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    # 1009, "Message is too big" (unless the close frame is lost to the reset of the unread rest)
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1009, closed.value.rcvd
    free_slot(stack)
    with open_from(url, "127.0.0.30") as ws:  # under the cap: kept, and transcribed with the rest
        early = EARLY_AUDIO_BYTES - 16 * 1024
        ws.send(pcm[:early])
        ws.send(json.dumps({"type": "Start", "language": "en"}))
        begin = json.loads(ws.recv(timeout=30))
        assert begin["type"] == "Begin", begin
        send_paced(ws, pcm[early:])
        ws.send(json.dumps({"type": "Close"}))
        summary = messages_until(ws, {"Summary"}, timeout_s=60)[-1]
    assert summary["duration_s"] == pytest.approx(len(pcm) / 32000, abs=0.05)
    free_slot(stack)


# --- live sessions per key ------------------------------------------------------------------
def test_a_key_runs_at_most_its_live_sessions(stack: Stack, keys: ApiKeyRepository, pcm: bytes) -> None:
    team_a, team_b = new_key(keys, "live-a"), new_key(keys, "live-b")
    with open_from(native_url(stack, team_a), "127.0.0.40") as first:
        first.send(json.dumps({"type": "Start", "language": "en"}))
        assert json.loads(first.recv(timeout=30))["type"] == "Begin"
        speaking = threading.Event()
        speaking.set()
        feeder = threading.Thread(target=_send_silence, args=(first, speaking), daemon=True)
        feeder.start()  # silence is audio: the session stays open past the idle timeout
        with open_from(native_url(stack, team_a), "127.0.0.40") as second:
            second.send(json.dumps({"type": "Start", "language": "en"}))
            refused = json.loads(second.recv(timeout=30))
        assert refused["type"] == "Error" and refused["kind"] == "limited", refused
        assert "max_live_sessions_per_key" in refused["message"]
        # Another key is under its own limit: it starts (or hears "busy" if no slot is free).
        with open_from(native_url(stack, team_b), "127.0.0.41") as other:
            other.send(json.dumps({"type": "Start", "language": "en"}))
            reply = json.loads(other.recv(timeout=30))
            assert reply["type"] == "Begin" or reply["kind"] == "busy", reply
            if reply["type"] == "Begin":
                other.send(json.dumps({"type": "Close"}))
                messages_until(other, {"Summary"}, timeout_s=60)
        speaking.clear()
        feeder.join(timeout=10)
        first.send(json.dumps({"type": "Close"}))
        messages_until(first, {"Summary"}, timeout_s=60)
    free_slot(stack)
    with open_from(native_url(stack, team_a), "127.0.0.40") as again:  # its session ended: a new one
        again.send(json.dumps({"type": "Start", "language": "en"}))
        assert json.loads(again.recv(timeout=30))["type"] == "Begin"
        again.send(json.dumps({"type": "Close"}))
        messages_until(again, {"Summary"}, timeout_s=60)
    free_slot(stack)


# --- only audio keeps a session alive -------------------------------------------------------
def test_keepalives_without_audio_end_the_session_as_idle_and_its_job_keeps_its_sentences(
        stack: Stack, keys: ApiKeyRepository, pcm: bytes) -> None:
    key = new_key(keys, "keepalive-only")
    received: list[dict] = []
    with open_from(native_url(stack, key), "127.0.0.50") as ws:
        ws.send(json.dumps({"type": "Start", "language": "en"}))
        begin = json.loads(ws.recv(timeout=30))
        assert begin["type"] == "Begin", begin
        reader = threading.Thread(target=_collect, args=(ws, received), daemon=True)
        reader.start()
        send_paced(ws, pcm)
        audio_end_s = time.monotonic()
        with contextlib.suppress(ConnectionClosed):  # KeepAlives, well within the idle timeout, for 30 s
            while reader.is_alive() and time.monotonic() - audio_end_s < 30:
                ws.send(json.dumps({"type": "KeepAlive"}))
                time.sleep(IDLE_TIMEOUT_S / 4)
        ended_s = time.monotonic()
        reader.join(timeout=30)
    assert received and received[-1]["type"] == "Error", received[-3:]
    assert received[-1]["kind"] == "idle" and begin["job_id"] in received[-1]["message"], received[-1]
    assert ended_s - audio_end_s < 20, "KeepAlives held the session open"
    finals = [m for m in received if m["type"] == "Final"]
    job = final_job(stack, begin["job_id"], key)
    assert job["status"] == "succeeded" and job["result"]["segments"], job
    assert [s["text"] for s in job["result"]["segments"]] == [m["text"] for m in finals]
    free_slot(stack)


def test_text_frames_the_protocol_ignores_do_not_keep_a_session_open(
        stack: Stack, keys: ApiKeyRepository, pcm: bytes) -> None:
    key = new_key(keys, "ignored-text")
    received: list[dict] = []
    with open_from(f"ws://127.0.0.1:{stack.settings.ws_port}/v1/asr", "127.0.0.60") as ws:
        ws.send(json.dumps({"name": "StartTranscription", "message_id": "m", "token": key, "task_id": "",
                            "language": "en"}))
        begin = json.loads(ws.recv(timeout=30))
        assert begin["header"]["status"] == 0, begin
        reader = threading.Thread(target=_collect, args=(ws, received), daemon=True)
        reader.start()
        send_paced(ws, pcm)
        audio_end_s = time.monotonic()
        with contextlib.suppress(ConnectionClosed):
            while reader.is_alive() and time.monotonic() - audio_end_s < 30:
                ws.send(json.dumps({"ping": "still here"}))
                time.sleep(0.2)
        ended_s = time.monotonic()
        reader.join(timeout=30)
    end = received[-1]
    assert end["header"]["name"] == "SentenceEnd" and end["payload"]["result"] == "END", received[-3:]
    assert ended_s - audio_end_s < 20, "ignored text frames held the session open"
    job = final_job(stack, begin["header"]["task_id"], key)
    assert job["status"] == "succeeded" and job["result"]["segments"], job
    free_slot(stack)


def _send_silence(ws: ClientConnection, speaking: threading.Event) -> None:
    with contextlib.suppress(ConnectionClosed, OSError):
        while speaking.is_set():
            ws.send(b"\0" * 3200)
            time.sleep(0.1)


def _collect(ws: ClientConnection, received: list[dict]) -> None:
    with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
        while True:
            received.append(json.loads(ws.recv(timeout=60)))
