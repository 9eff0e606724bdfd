"""A native-protocol live session in one call, a resumed one's second half (the fault tests, on
one host and across hosts), their audio, and the wait for a stream worker's speaker model (it
loads on the first session that asks for speakers, unless preloaded)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import soundfile
from websockets.exceptions import ConnectionClosed

from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from tests.support.stack import Stack
from tests.support.ws_clients import open_ws

#: One second of silence: enough for a session to start and end.
SILENCE_PCM = bytes(32000)


def native_session(stack: Stack, pcm: bytes, start: dict | None = None, frame_bytes: int = 6400,
                   frame_interval_s: float = 0.05) -> list[dict]:
    """Begin, the audio, Close; every message up to the Summary or an Error."""
    received: list[dict] = []
    with open_ws(f"ws://127.0.0.1:{stack.settings.port}/v1/stream") as ws:
        ws.send(json.dumps({"type": "Start", "sample_rate": 16000, "language": "en", "partials": False,
                            **(start or {})}))
        received.append(json.loads(ws.recv(timeout=60)))
        try:
            for offset in range(0, len(pcm), frame_bytes):
                ws.send(pcm[offset:offset + frame_bytes])
                time.sleep(frame_interval_s)
            ws.send(json.dumps({"type": "Close"}))
        except ConnectionClosed:  # the server ended the session early: read why below
            pass
        while received[-1]["type"] not in {"Summary", "Error"}:
            received.append(json.loads(ws.recv(timeout=60)))
    return received


def wait_for_speaker_model(stack: Stack, timeout_s: float = 180.0) -> None:
    """Ask for speakers until the stream worker has its speaker model loaded."""
    deadline_s = time.monotonic() + timeout_s
    while True:
        stack.wait_stream_slots(1)
        last = native_session(stack, SILENCE_PCM, {"speakers": True})[-1]
        if last["type"] == "Summary":
            return
        assert "still loading" in last["message"], last
        if time.monotonic() > deadline_s:
            raise TimeoutError(f"the speaker model did not load within {timeout_s} s")
        time.sleep(1.0)


def three_sentence_pcm(speech_dir: Path, name: str = "stream-three.wav") -> bytes:
    """Three generated sentences 1.2 s apart, as 16 kHz int16 PCM: the fault tests' session."""
    wav = make_long_recording([REFERENCE_SENTENCES[1], REFERENCE_SENTENCES[3], REFERENCE_SENTENCES[5]],
                              speech_dir / name, gap_s=1.2)
    samples, _ = soundfile.read(wav, dtype="int16")
    return bytes(samples.tobytes())


def read_messages(ws: Any, received: list[dict]) -> None:  # noqa: ANN401 - a websockets connection
    """Append every message of `ws` to `received` until it closes (run on a thread)."""
    with contextlib.suppress(ConnectionClosed, OSError):
        for raw in ws:
            received.append(json.loads(raw))


def resume_and_finish(url: str, begin: dict, pcm: bytes, received: list[dict]) -> tuple[dict, float]:
    """Reconnect to `url` after the session's last final, send the rest of `pcm` from the
    server's byte count, Close, and read to the end into `received`. Returns the resumed Begin
    and when it came (monotonic seconds)."""
    last_final = max(m["index"] for m in received if m["type"] == "Final")
    with open_ws(url) as ws:
        ws.send(json.dumps({"type": "Start", "session": begin["session_id"], "last_final": last_final}))
        resumed = json.loads(ws.recv(timeout=30))
        resumed_s = time.monotonic()
        assert resumed["type"] == "Begin" and resumed["resumed"] is True, resumed
        reader = threading.Thread(target=read_messages, args=(ws, received), daemon=True)
        reader.start()
        rest = pcm[resumed["audio_received_bytes"]:]
        for offset in range(0, len(rest), 6400):
            ws.send(rest[offset:offset + 6400])
            time.sleep(0.05)
        ws.send(json.dumps({"type": "Close"}))
        reader.join(timeout=60)
    return resumed, resumed_s
