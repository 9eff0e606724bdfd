"""Live capacity on the default process layout: eight English sessions at once, and finals that
do not change when something else saturates the CPU (partials may thin out)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jiwer
import pytest
import soundfile

from shared.config import Settings
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from tests.support.stack import Stack, running_stack
from tests.support.ws_clients import funasr_session, oddasr_session, open_ws

SENTENCES = [REFERENCE_SENTENCES[1], REFERENCE_SENTENCES[4], REFERENCE_SENTENCES[6]]
FRAME_BYTES = 3200
DEFAULTS = Settings()


def clean(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    """The stream workers as a fresh install runs them: the default processes and sessions each."""
    with running_stack(tmp_path_factory.mktemp("capacity"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=0, stream_slot_wait_s=30.0,
                       stream_sessions_per_worker=DEFAULTS.stream_sessions_per_worker) as stack:
        stack.start_stream_workers(DEFAULTS.stream_workers)
        stack.wait_stream_slots(DEFAULTS.stream_workers * DEFAULTS.stream_sessions_per_worker)
        yield stack


@pytest.fixture(scope="module")
def wav(speech_dir: Path) -> Path:
    return make_long_recording(SENTENCES, speech_dir / "capacity-three.wav", gap_s=1.0)


@pytest.fixture(scope="module")
def pcm(wav: Path) -> bytes:
    samples, rate = soundfile.read(wav, dtype="int16")
    assert rate == 16000
    return samples.tobytes()


def native_session(stack: Stack, pcm: bytes, speed: float = 1.0) -> dict:
    """One native session paced at `speed` x real time; its messages by type. Results are
    read while the audio goes out, as a live client does (a client that reads nothing until
    the end stops reading its socket once its queue is full, and then answers no ping)."""
    messages: list[dict] = []

    def read(ws) -> None:  # type: ignore[no-untyped-def]
        while True:
            message = json.loads(ws.recv(timeout=120))
            messages.append(message)
            if message["type"] in ("Summary", "Error"):
                return

    with open_ws(f"ws://127.0.0.1:{stack.settings.port}/v1/stream") as ws:
        ws.send(json.dumps({"type": "Start", "sample_rate": 16000, "language": "en"}))
        reader = threading.Thread(target=read, args=(ws,), daemon=True)
        reader.start()
        started_s = time.monotonic()
        for index, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
            ws.send(pcm[offset:offset + FRAME_BYTES])
            time.sleep(max(0.0, started_s + (index + 1) * FRAME_BYTES / 32000 / speed - time.monotonic()))
        ws.send(json.dumps({"type": "Close"}))
        reader.join(timeout=120)
    return {"finals": [m["text"] for m in messages if m["type"] == "Final"],
            "partials": [m for m in messages if m["type"] == "Partial"],
            "end": messages[-1]}


def test_a_client_that_reads_only_at_the_end_is_not_dropped(stack: Stack, pcm: bytes) -> None:
    """Partials pile up unread while such a client sends for longer than two ping intervals;
    its websocket library then stops reading (its queue is full) and answers no ping. It is
    sending, so it is alive: the session must end normally."""
    seconds = 2 * stack.settings.stream_ping_interval_s + 2
    repeated = pcm * (1 + int(seconds * 32000) // len(pcm))
    with open_ws(f"ws://127.0.0.1:{stack.settings.port}/v1/stream") as ws:
        ws.send(json.dumps({"type": "Start", "sample_rate": 16000, "language": "en"}))
        started_s = time.monotonic()
        for index, offset in enumerate(range(0, len(repeated), FRAME_BYTES)):
            ws.send(repeated[offset:offset + FRAME_BYTES])
            time.sleep(max(0.0, started_s + (index + 1) * FRAME_BYTES / 32000 - time.monotonic()))
        ws.send(json.dumps({"type": "Close"}))
        kinds = []
        while not kinds or kinds[-1] not in ("Summary", "Error"):
            kinds.append(json.loads(ws.recv(timeout=60))["type"])
    assert kinds[-1] == "Summary" and kinds.count("Partial") > 16, kinds
    stack.wait_stream_slots(DEFAULTS.stream_workers * DEFAULTS.stream_sessions_per_worker)


def test_eight_english_sessions_are_served_at_once(stack: Stack, pcm: bytes) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        sessions = list(pool.map(lambda _i: native_session(stack, pcm), range(8)))
    for session in sessions:
        assert session["end"]["type"] == "Summary", session["end"]
        assert jiwer.wer(clean(" ".join(SENTENCES)), clean(" ".join(session["finals"]))) <= 0.25, session["finals"]
        assert all(p["text"].startswith(p["stable_text"]) for p in session["partials"])
    pids = {slot["pid"] for slot in stack.stream_slots().values()}
    assert len(pids) == DEFAULTS.stream_workers
    stack.wait_stream_slots(DEFAULTS.stream_workers * DEFAULTS.stream_sessions_per_worker)


def test_a_saturated_cpu_thins_partials_but_never_changes_finals(stack: Stack, pcm: bytes) -> None:
    idle = native_session(stack, pcm, speed=2.0)
    hogs = [subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 120\n"
                              "while time.time() < end: pass"]) for _ in range(4)]
    try:
        loaded = native_session(stack, pcm, speed=2.0)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert loaded["end"]["type"] == "Summary", loaded["end"]
    assert jiwer.wer(clean(" ".join(idle["finals"])), clean(" ".join(loaded["finals"]))) <= 0.02, \
        (idle["finals"], loaded["finals"])
    stack.wait_stream_slots(DEFAULTS.stream_workers * DEFAULTS.stream_sessions_per_worker)


def test_oddasr_test_client_with_concurrency_4_passes_then_a_funasr_client_is_answered(
        stack: Stack, wav: Path, pcm: bytes) -> None:
    """OddASR's own test client (`testStreamAPI.py --concurrency 4`) opens four sessions at once
    and fails them all if one is refused; it sends the whole WAV at twice real time and ends
    only when the server closes with 1000. FunASR's client, run right after (as a user would),
    must still get its end acknowledgement: slots are given back when sessions end."""
    url = f"ws://127.0.0.1:{stack.settings.ws_port}/v1/asr"
    with ThreadPoolExecutor(max_workers=4) as pool:
        logs = list(pool.map(lambda _i: oddasr_session(url, wav), range(4)))
    for log in logs:
        names = [m.data["header"]["name"] for m in log.messages]
        assert names[0] == "SentenceBegin" and log.messages[0].data["header"]["status"] == 0, names
        ends = [m.data for m in log.messages if m.data["header"]["name"] == "SentenceEnd"]
        assert ends and ends[-1]["payload"]["result"] == "END" and ends[-1]["payload"]["fin"] == 1, names
        text = " ".join(e["payload"]["result"] for e in ends[:-1])
        assert jiwer.wer(clean(" ".join(SENTENCES)), clean(text)) <= 0.25, text
        assert log.close_code == 1000, log.close_code
    funasr = funasr_session(f"ws://127.0.0.1:{stack.settings.funasr_ws_port}/", pcm)
    assert any(m.data.get("is_end") for m in funasr.messages), [m.data for m in funasr.messages][-3:]
    assert funasr.of_mode("2pass-offline"), [m.data for m in funasr.messages][-3:]
    stack.wait_stream_slots(DEFAULTS.stream_workers * DEFAULTS.stream_sessions_per_worker)
