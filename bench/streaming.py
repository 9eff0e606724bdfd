"""Live streaming latency, capacity, relay overhead and accuracy, through the whole service.

The metric set of FunASR's realtime websocket benchmark: each session replays 16 kHz PCM
paced in real time in 100 ms frames (FunASR 2pass protocol), and reports

- first partial: first audio frame sent -> first partial result received (p50 / p95);
- final after stop: end of audio sent -> last corrected sentence received (p50 / p95);
- response lag: for every result, its arrival minus the moment the audio it covers had been
  sent (p95): how far behind real time the text runs;
- relay overhead: each relay frame's trip through Redis (publisher's send stamp -> arrival
  at a subscriber on the same machine), both directions, plus the API's own time from the
  client's frame to its publish (p50 / p99; goal p99 <= 5 ms);
- WER of the streamed finals against the text, beside the offline WER of the same engine on
  the same audio through a file job (goal: within 0.03).

It runs 1 stream, then more at once while every session keeps up with real time (final
after stop p95 <= 1.5 s), and reports streams per core.

`--engine funasr` measures the FunASR 2pass engine (streaming Paraformer + fsmn-vad + offline
Paraformer and punctuation per sentence) with the tests' tiny random models: latency,
capacity and relay overhead only, since their text is noise (no WER). Real paraformer-zh
weights cost far more per chunk than these; the figures are the service's own cost around them.
Run: `.venv/bin/python bench/streaming.py [--max-streams 4] [--model tiny.en] [--engine funasr]`
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jiwer
import numpy as np
import redis
import requests
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CACHE_DIR, run_redis  # noqa: E402
from shared import stream_messages as sm  # noqa: E402
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording  # noqa: E402
from tests.support.stack import running_stack, wait_for_job  # noqa: E402
from tests.support.tiny_funasr import build_tiny_models  # noqa: E402
from tests.support.ws_clients import open_ws  # noqa: E402

FRAME_MS = 100
FRAME_BYTES = 3200
KEEPS_UP_FINAL_P95_S = 1.5


def clean(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(values, q))


class RelayTap:
    """Subscribes to every session's channels and times each frame's trip through Redis."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe("oddasr:stream:session:*")
        self.to_worker_ms: list[float] = []
        self.to_api_ms: list[float] = []
        self.api_handling_ms: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if not message or message["type"] != "pmessage":
                continue
            now_s = time.time()
            header, _ = sm.decode_frame(message["data"])
            delay_ms = (now_s - header.sent_at_s) * 1000
            if message["channel"].endswith(b":in"):
                self.to_worker_ms.append(delay_ms)
                if header.received_at_s:
                    self.api_handling_ms.append((header.sent_at_s - header.received_at_s) * 1000)
            else:
                self.to_api_ms.append(delay_ms)


def run_session(url: str, pcm: bytes) -> dict:
    """One FunASR 2pass session in real time; returns its timings and text."""
    results: list[tuple[float, dict]] = []
    with open_ws(url, subprotocols=["binary"]) as ws:
        ws.send(json.dumps({"mode": "2pass", "chunk_size": [5, 10, 5], "wav_name": "bench", "is_speaking": True,
                            "audio_fs": 16000, "wav_format": "pcm"}))

        def read() -> None:
            while True:
                data = json.loads(ws.recv(timeout=120))
                results.append((time.monotonic(), data))
                if data.get("is_end") or data.get("error"):
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        started_s = time.monotonic()
        for index, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
            ws.send(pcm[offset:offset + FRAME_BYTES])
            time.sleep(max(0.0, started_s + (index + 1) * FRAME_MS / 1000 - time.monotonic()))
        audio_end_s = time.monotonic()
        ws.send(json.dumps({"is_speaking": False, "is_end": True}))
        reader.join(timeout=120)
    partials = [t for t, d in results if d.get("mode") == "2pass-online"]
    finals = [(t, d) for t, d in results if d.get("mode") == "2pass-offline"]
    return {
        "first_partial_s": (partials[0] - started_s) if partials else float("nan"),
        "final_after_stop_s": (finals[-1][0] - audio_end_s) if finals else float("nan"),
        "text": " ".join(d["text"] for _, d in finals),
        "errors": [d["error"] for _, d in results if d.get("error")],
        "started_s": started_s,
        "audio_end_s": audio_end_s,
        "final_arrivals": [t for t, _ in finals],
    }


def response_lags(session: dict, sentence_ends_s: list[float]) -> list[float]:
    """Each final's arrival minus when the end of its sentence had been sent."""
    lags = []
    for arrived_s, end_s in zip(session["final_arrivals"], sentence_ends_s, strict=False):
        lags.append(arrived_s - (session["started_s"] + end_s))
    return lags


def sentence_ends(samples: np.ndarray, count: int) -> list[float]:
    """Where each sentence of the recording ends: the start of each 0.5 s run of silence."""
    frames = np.abs(samples[: len(samples) // 160 * 160].astype(np.float32)).reshape(-1, 160).mean(axis=1)
    ends, quiet = [], 0
    for frame, level in enumerate(frames):
        quiet = quiet + 1 if level < 50 else 0
        if quiet == 50:
            ends.append((frame - 49) / 100)
    return (ends + [len(samples) / 16000])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-streams", type=int, default=4)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--engine", choices=("whisper", "funasr"), default="whisper")
    args = parser.parse_args()
    if args.engine == "funasr":
        models = build_tiny_models(CACHE_DIR / "funasr-tiny")
        engine: dict[str, object] = {"engine": "funasr", "funasr_asr_model": str(models["asr"]),
                                     "funasr_punc_model": str(models["punc"]),
                                     "funasr_stream_asr_model": str(models["stream"])}
        described = "funasr 2pass, tiny random ParaformerStreaming + SeacoParaformer + CT-Transformer (text is noise)"
    else:
        engine = {"whisper_model": args.model, "whisper_beam_size": 5}
        described = f"model {args.model}, beam 5 for finals"
    texts = [REFERENCE_SENTENCES[i] for i in (0, 1, 3, 5)]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    wav = make_long_recording(texts, CACHE_DIR / "stream-bench.wav", gap_s=1.2)
    samples, _ = soundfile.read(wav, dtype="int16")
    pcm = samples.tobytes()
    sentence_ends_s = sentence_ends(samples, len(texts))

    # End the audio where the last sentence ends: "final after stop" then times the flush
    # that the end of audio triggers, not a pause the VAD had already closed.
    pcm = pcm[: int((sentence_ends_s[-1] + 0.2) * 16000) * 2]
    tmp = Path(tempfile.mkdtemp(prefix="oddasr-stream-bench-"))
    redis_server = run_redis(tmp / "redis")
    cores = os.cpu_count() or 1
    print(f"audio: {len(pcm) / 32000:.1f} s, {len(texts)} sentences, paced in real time in {FRAME_MS} ms frames; "
          f"{described}; {cores} cores")
    reference = clean(" ".join(texts))
    header = ("streams | first partial p50/p95 s | final after stop p50/p95 s | response lag p95 s | "
              "stream WER | offline WER")
    try:
        # Latency: one session on a worker that may use every core.
        with running_stack(tmp / "latency", redis_server.url, file_concurrency=1, sentence_concurrency=1,
                           cpu_threads=cores, **engine) as stack:
            stack.start_stream_workers(1)
            stack.wait_stream_slots(1, timeout_s=300)
            offline_wer = (jiwer.wer(reference, clean(offline_text(stack, wav))) if args.engine == "whisper"
                           else float("nan"))
            tap = RelayTap(stack.settings.effective_redis_url)
            print(f"latency: 1 stream worker with {cores} threads")
            print(header)
            run_level(stack, 1, pcm, sentence_ends_s, reference, offline_wer)
            tap.stop.set()
            tap.thread.join()
        # Capacity: one single-threaded worker per stream, more streams until one falls behind.
        with running_stack(tmp / "capacity", redis_server.url, file_concurrency=1, sentence_concurrency=1,
                           cpu_threads=1, stream_slot_wait_s=30.0, **engine) as stack:
            stack.start_stream_workers(args.max_streams)
            stack.wait_stream_slots(args.max_streams, timeout_s=300)
            capacity_tap = RelayTap(stack.settings.effective_redis_url)
            print(f"capacity: {args.max_streams} stream workers with 1 thread each")
            print(header)
            sustained = 0
            for streams in range(1, args.max_streams + 1):
                if not run_level(stack, streams, pcm, sentence_ends_s, reference, offline_wer):
                    break
                sustained = streams
            print(f"sustained at real time (final after stop p95 <= {KEEPS_UP_FINAL_P95_S} s): {sustained} streams = "
                  f"{sustained / cores:.1f} streams per core")
            capacity_tap.stop.set()
            capacity_tap.thread.join()
        for name in ("to_worker_ms", "to_api_ms", "api_handling_ms"):
            getattr(tap, name).extend(getattr(capacity_tap, name))
        print("relay overhead, over every frame of both runs:")
        print(f"relay API->worker via Redis: p50 {pct(tap.to_worker_ms, 50):.2f} ms, p99 "
              f"{pct(tap.to_worker_ms, 99):.2f} ms ({len(tap.to_worker_ms)} frames)")
        print(f"relay worker->API via Redis: p50 {pct(tap.to_api_ms, 50):.2f} ms, p99 "
              f"{pct(tap.to_api_ms, 99):.2f} ms ({len(tap.to_api_ms)} frames)")
        print(f"API handling (client frame -> publish): p50 {pct(tap.api_handling_ms, 50):.2f} ms, p99 "
              f"{pct(tap.api_handling_ms, 99):.2f} ms")
    finally:
        redis_server.close()


def offline_text(stack, wav: Path) -> str:  # type: ignore[no-untyped-def]
    """The same recording as a file job, through the same engine: the accuracy to match."""
    with wav.open("rb") as audio:
        job = requests.post(stack.url("/v1/jobs"), files={"audio": audio}, timeout=60).json()
    return str(wait_for_job(stack, job["id"], timeout_s=300)["result"]["text"])


def run_level(stack, streams: int, pcm: bytes, sentence_ends_s: list[float], reference: str,  # type: ignore[no-untyped-def]
              offline_wer: float) -> bool:
    """`streams` sessions at once; prints their row; True when every one kept up."""
    url = f"ws://127.0.0.1:{stack.settings.funasr_ws_port}/"
    with ThreadPoolExecutor(max_workers=streams) as pool:
        sessions = list(pool.map(lambda _i: run_session(url, pcm), range(streams)))
    firsts = [s["first_partial_s"] for s in sessions]
    finals = [s["final_after_stop_s"] for s in sessions]
    lags = [lag for s in sessions for lag in response_lags(s, sentence_ends_s)]
    # No WER where the text is noise (the offline WER is nan then: the tiny FunASR models).
    wers = [float("nan") if math.isnan(offline_wer) else jiwer.wer(reference, clean(s["text"])) for s in sessions]
    errors = [e for s in sessions for e in s["errors"]]
    print(f"{streams:7d} | {pct(firsts, 50):.2f} / {pct(firsts, 95):.2f} | "
          f"{pct(finals, 50):.2f} / {pct(finals, 95):.2f} | {pct(lags, 95):.2f} | "
          f"{statistics.mean(wers):.3f} | {offline_wer:.3f}" + (f" | errors: {errors}" if errors else ""))
    return not errors and pct(finals, 95) <= KEEPS_UP_FINAL_P95_S


if __name__ == "__main__":
    main()
