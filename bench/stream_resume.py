"""Resuming a dropped session, and reprocessing a session, measured through the whole service.

- time to resume: the TCP connection is cut without a close frame mid-session; the client
  reconnects at once and resends from the server's byte count. Measured: reconnect (new
  socket opened) -> `Begin` with `resumed`, and reconnect -> the first new result (a Partial
  or Final about audio sent after the reconnect), p50 / max over several runs;
- reprocess time: a session that asks for `reprocess: offline` (and `diarize`): the end of the
  session (`Summary`) -> its file job succeeded, as a fraction of the session's audio length.

Streams are paced at real time in 100 ms frames (native protocol), Whisper tiny.en.
Run: `.venv/bin/python bench/stream_resume.py [--runs 5]`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CACHE_DIR, run_redis  # noqa: E402
from tests.support.speech import REFERENCE_SENTENCES, make_dialogue, make_long_recording  # noqa: E402
from tests.support.stack import Stack, running_stack  # noqa: E402
from tests.support.ws_clients import open_ws  # noqa: E402

FRAME_BYTES = 3200
FRAME_S = 0.1


def send_paced(ws, pcm: bytes) -> None:  # type: ignore[no-untyped-def]
    started_s = time.monotonic()
    for index, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
        ws.send(pcm[offset:offset + FRAME_BYTES])
        delay_s = started_s + (index + 1) * FRAME_S - time.monotonic()
        if delay_s > 0:
            time.sleep(delay_s)


def collect(ws, sink: list[tuple[float, dict]]) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(Exception):
        for raw in ws:
            sink.append((time.monotonic(), json.loads(raw)))


def resume_once(stack: Stack, pcm: bytes, drop_fraction: float) -> tuple[float, float]:
    url = f"ws://127.0.0.1:{stack.settings.port}/v1/stream"
    received: list[tuple[float, dict]] = []
    ws = open_ws(url)
    ws.send(json.dumps({"type": "Start", "language": "en"}))
    session_id = json.loads(ws.recv(timeout=30))["session_id"]
    reader = threading.Thread(target=collect, args=(ws, received), daemon=True)
    reader.start()
    cut = int(len(pcm) * drop_fraction) // 2 * 2
    send_paced(ws, pcm[:cut])
    ws.socket.shutdown(socket.SHUT_RDWR)
    ws.socket.close()
    reader.join(timeout=2)
    finals = [m["index"] for _, m in received if m["type"] == "Final"]
    reconnect_s = time.monotonic()
    ws = open_ws(url)
    ws.send(json.dumps({"type": "Start", "session": session_id, "last_final": max(finals) if finals else -1}))
    begin = json.loads(ws.recv(timeout=30))
    begin_s = time.monotonic()
    assert begin.get("resumed"), begin
    after: list[tuple[float, dict]] = []
    reader = threading.Thread(target=collect, args=(ws, after), daemon=True)
    reader.start()
    resent_from = begin["audio_received_bytes"]
    send_paced(ws, pcm[resent_from:])
    ws.send(json.dumps({"type": "Close"}))
    reader.join(timeout=60)
    ws.close()
    resent_from_s = resent_from / 32000
    first_new = next(at for at, m in after if m["type"] in ("Partial", "Final") and m["end"] > resent_from_s)
    return begin_s - reconnect_s, first_new - reconnect_s


def reprocess_once(stack: Stack, pcm: bytes, mode: str) -> tuple[float, float]:
    """(session audio s, seconds from Summary to the file job's success)."""
    url = f"ws://127.0.0.1:{stack.settings.port}/v1/stream"
    with open_ws(url) as ws:
        ws.send(json.dumps({"type": "Start", "language": "en", "reprocess": mode}))
        json.loads(ws.recv(timeout=30))
        send_paced(ws, pcm)
        ws.send(json.dumps({"type": "Close"}))
        while True:
            message = json.loads(ws.recv(timeout=60))
            if message["type"] == "Summary":
                break
    ended_s = time.monotonic()
    child = message["reprocess"]["job_id"]
    while True:
        job = requests.get(stack.url(f"/v1/jobs/{child}"), timeout=10).json()
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "succeeded", job
    return message["duration_s"], time.monotonic() - ended_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    texts = [REFERENCE_SENTENCES[i] for i in (0, 1, 3)]
    wav = make_long_recording(texts, CACHE_DIR / "stream-resume-bench.wav", gap_s=1.2)
    pcm = soundfile.read(wav, dtype="int16")[0].tobytes()
    dialogue, _turns = make_dialogue(REFERENCE_SENTENCES[:4], CACHE_DIR / "stream-resume-dialogue.wav")
    dialogue_pcm = soundfile.read(dialogue, dtype="int16")[0].tobytes()
    tmp = Path(tempfile.mkdtemp(prefix="oddasr-resume-bench-"))
    redis_server = run_redis(tmp / "redis")
    try:
        with running_stack(tmp / "stack", redis_server.url, file_concurrency=1, sentence_concurrency=1,
                           whisper_model="tiny.en", whisper_beam_size=5, cpu_threads=1) as stack:
            stack.start_stream_workers(1)
            stack.wait_stream_slots(1, timeout_s=300)
            begins, firsts = [], []
            for run in range(args.runs):
                begin_s, first_s = resume_once(stack, pcm, drop_fraction=0.25 + 0.1 * (run % 4))
                begins.append(begin_s)
                firsts.append(first_s)
                stack.wait_stream_slots(1, timeout_s=60)
            print(f"audio {len(pcm) / 32000:.1f} s, {args.runs} drops mid-session, reconnect at once")
            print(f"reconnect -> Begin(resumed): p50 {statistics.median(begins) * 1000:.0f} ms, "
                  f"max {max(begins) * 1000:.0f} ms")
            print(f"reconnect -> first new result: p50 {statistics.median(firsts):.2f} s, max {max(firsts):.2f} s")
            # Twice each: the first diarize job of a worker process loads the speaker encoder.
            for mode, audio, label in (("offline", pcm, ""), ("offline", pcm, ""), ("diarize", dialogue_pcm, " (cold)"),
                                       ("diarize", dialogue_pcm, " (warm)")):
                session_s, reprocess_s = reprocess_once(stack, audio, mode)
                stack.wait_stream_slots(1, timeout_s=60)
                print(f"reprocess {mode}{label}: {session_s:.1f} s session -> file job done {reprocess_s:.2f} s after "
                      f"the end = {reprocess_s / session_s:.2f} of the session's length")
    finally:
        redis_server.stop()


if __name__ == "__main__":
    main()
