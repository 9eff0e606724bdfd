"""A native-protocol live session in one call, and the wait for a stream worker's speaker
model (it loads on the first session that asks for speakers, unless preloaded)."""

from __future__ import annotations

import json
import time

from websockets.exceptions import ConnectionClosed

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
