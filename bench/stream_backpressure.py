"""Memory of the API and the stream worker when a client sends far faster than real time.

A FunASR client in offline mode pushes minutes of audio as fast as the socket takes it. The
worker may hold `stream_max_backlog_s` of unprocessed audio; past that the API stops taking
frames, and simple-websocket's reader stops reading the socket (api/streaming/socket_gate.py),
so TCP slows the client. Printed: how long the client took to send (bounded by the worker's
speed, not the network's), and the API and worker processes' RSS before, at peak, and after.
Run: `.venv/bin/python bench/stream_backpressure.py [--minutes 5]`
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CACHE_DIR, run_redis  # noqa: E402
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording  # noqa: E402
from tests.support.stack import running_stack  # noqa: E402
from tests.support.ws_clients import open_ws  # noqa: E402

FRAME_BYTES = 32000


def tree_rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--backlog-s", type=float, default=30.0)
    args = parser.parse_args()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    wav = make_long_recording([REFERENCE_SENTENCES[i] for i in (0, 1, 3, 5)], CACHE_DIR / "stream-bench.wav",
                              gap_s=1.2)
    samples, _ = soundfile.read(wav, dtype="int16")
    loop = samples.tobytes()
    pcm = (loop * int(args.minutes * 60 * 32000 / len(loop) + 1))[: int(args.minutes * 60 * 32000)]
    tmp = Path(tempfile.mkdtemp(prefix="oddasr-backpressure-"))
    redis_server = run_redis(tmp / "redis")
    try:
        with running_stack(tmp / "stack", redis_server.url, file_concurrency=1, sentence_concurrency=1,
                           whisper_model="tiny.en", whisper_beam_size=1, cpu_threads=2,
                           stream_max_backlog_s=args.backlog_s) as stack:
            stack.start_stream_workers(1)
            stack.wait_stream_slots(1)
            api_pid = stack.processes["api"].pid
            worker_pid = stack.processes["stream-worker"].pid
            before = (tree_rss_mb(api_pid), tree_rss_mb(worker_pid))
            peaks = list(before)
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.2):
                    peaks[0] = max(peaks[0], tree_rss_mb(api_pid))
                    peaks[1] = max(peaks[1], tree_rss_mb(worker_pid))

            threading.Thread(target=sample, daemon=True).start()
            started_s = time.monotonic()
            with open_ws(f"ws://127.0.0.1:{stack.settings.funasr_ws_port}/", subprotocols=["binary"]) as ws:
                ws.send(json.dumps({"mode": "offline", "wav_name": "bench", "is_speaking": True}))
                for offset in range(0, len(pcm), FRAME_BYTES):
                    ws.send(pcm[offset:offset + FRAME_BYTES])
                sent_s = time.monotonic() - started_s
                ws.send(json.dumps({"is_speaking": False, "is_end": True}))
                result = json.loads(ws.recv(timeout=1800))
                total_s = time.monotonic() - started_s
            done.set()
            after = (tree_rss_mb(api_pid), tree_rss_mb(worker_pid))
            print(f"{args.minutes:.0f} min of audio ({len(pcm) / 2**20:.1f} MiB) sent unpaced; backlog "
                  f"{args.backlog_s:.0f} s; the client needed {sent_s:.1f} s to send it, {total_s:.1f} s to the "
                  f"result ({len(result.get('text', ''))} characters)")
            print(f"API processes RSS MB: before {before[0]:.0f}, peak {peaks[0]:.0f}, after {after[0]:.0f}")
            print(f"stream worker processes RSS MB: before {before[1]:.0f}, peak {peaks[1]:.0f}, after {after[1]:.0f}")
    finally:
        redis_server.close()


if __name__ == "__main__":
    main()
