"""What one online fsmn-vad call costs, torch-free, per runtime (numpy and onnxruntime).

A live session calls the VAD on every chunk it receives; a call that took a good part of the
chunk's own length would leave the worker behind the speaker. This feeds 30 minutes of speech
(four generated sentences with 1 s pauses, looped) in 600 ms chunks through one stream and
prints the mean and median time per call, against a goal of 50 ms (a twelfth of the chunk).
It was asserted in `tests/test_fsmn_vad_lite.py` until a busy machine failed it: a test
checks what the VAD finds and what it holds, the speed is measured here.
Run: `.venv/bin/python bench/vad_stream.py [--minutes 30] [--runtime numpy|onnx|both]`
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CACHE_DIR  # noqa: E402
from shared.audio import decode_16k_mono  # noqa: E402
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording  # noqa: E402
from worker.engines.fsmn_vad_lite import FsmnVadLite  # noqa: E402
from worker.engines.model_files import resolve_vad_model_dir  # noqa: E402

SAMPLES_PER_MS = 16
CHUNK_MS = 600
MAX_END_SILENCE_MS = 800
GOAL_PER_CALL_MS = 50.0


def call_times_s(runtime: str, audio: np.ndarray, minutes: float) -> list[float]:
    """Seconds each `accept` of one stream took, over `minutes` of `audio` looped."""
    vad = FsmnVadLite(resolve_vad_model_dir(""), max_end_silence_ms=MAX_END_SILENCE_MS, runtime=runtime)
    stream = vad.open_stream()
    chunk = CHUNK_MS * SAMPLES_PER_MS
    times_s: list[float] = []
    position = 0
    for _ in range(int(minutes * 60 * 1000 / CHUNK_MS)):
        piece = audio[position:position + chunk]
        if piece.size < chunk:
            piece = np.concatenate((piece, audio[: chunk - piece.size]))
        position = (position + chunk) % audio.size
        started_s = time.perf_counter()
        stream.accept(piece)
        times_s.append(time.perf_counter() - started_s)
    return times_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--runtime", choices=["numpy", "onnx", "both"], default="both")
    args = parser.parse_args()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    audio = decode_16k_mono(make_long_recording(REFERENCE_SENTENCES[:4], CACHE_DIR / "vad-stream-4.wav", gap_s=1.0))
    runtimes = ["numpy", "onnx"] if args.runtime == "both" else [args.runtime]
    for runtime in runtimes:
        times_s = call_times_s(runtime, audio, args.minutes)
        mean_ms = statistics.fmean(times_s) * 1000
        median_ms = statistics.median(times_s) * 1000
        verdict = "meets" if mean_ms < GOAL_PER_CALL_MS else "MISSES"
        print(f"fsmn-vad {runtime}: {len(times_s)} calls of {CHUNK_MS} ms over {args.minutes:g} min: "
              f"mean {mean_ms:.1f} ms, median {median_ms:.1f} ms per call ({verdict} the goal of "
              f"< {GOAL_PER_CALL_MS:.0f} ms)")


if __name__ == "__main__":
    main()
