"""A stream worker's memory over a 30-minute live session: it must stay flat.

Feeds 30 minutes of speech (the benchmark recording, looped) through one live session of
the default English live engine (Moonshine: tiny partials, base finals; `--engine whisper` for Whisper) in 100 ms
frames, as fast as the engine takes it, with the
worker's per-frame work (VAD, partials, finals, the session's recording on disk), and
prints the process's RSS every 5 minutes of audio. Partials are attempted once per 5 s of
audio instead of twice a second so the run takes minutes, not half an hour: they allocate
nothing that outlives the decode.
Run: `.venv/bin/python bench/stream_memory.py [--minutes 30] [--engine moonshine|whisper] [--model tiny.en]`
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import psutil
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CACHE_DIR  # noqa: E402
from shared.config import Settings  # noqa: E402
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording  # noqa: E402
from worker.engines.base import StreamOptions  # noqa: E402
from worker.engines.whisper_engine import WhisperEngine  # noqa: E402
from worker.streaming.recorder import SessionRecorder  # noqa: E402

FRAME_SAMPLES = 1600
REPORT_EVERY_S = 300.0
#: The live worker decodes partials only while no audio waits; fed faster than real time, it
#: would decode few. Here: one attempt per 5 s of audio.
PARTIAL_EVERY_FRAMES = 50


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--model", default="tiny.en", help="the Whisper model, with --engine whisper")
    parser.add_argument("--engine", choices=("moonshine", "whisper"), default="moonshine")
    args = parser.parse_args()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    wav = make_long_recording([REFERENCE_SENTENCES[i] for i in (0, 1, 3, 5)], CACHE_DIR / "stream-bench.wav",
                              gap_s=1.2)
    loop, _ = soundfile.read(wav, dtype="float32")
    tmp = Path(tempfile.mkdtemp(prefix="oddasr-stream-memory-"))
    settings = Settings(whisper_model=args.model, whisper_beam_size=5, cpu_threads=2, data_dir=tmp,
                        model_cache_dir=Path.home() / ".cache" / "oddasr-test-models")
    if args.engine == "moonshine":
        from worker.engines.registry import LIVE_ONLY_ENGINES

        engine = LIVE_ONLY_ENGINES["moonshine"](settings, None)  # as configured: tiny partials, base finals
    else:
        engine = WhisperEngine(settings)
    session = engine.open_stream(StreamOptions())
    recorder = SessionRecorder(tmp, "bench")
    total_samples = int(args.minutes * 60 * 16000)
    fed = sentences = 0
    next_report_s = 0.0
    started_s = time.monotonic()
    print(f"engine {engine.name} {engine.model_name}; RSS after loading: {rss_mb():.0f} MB")
    print("audio min | RSS MB | sentences | wall s")
    while fed < total_samples:
        for offset in range(0, loop.size, FRAME_SAMPLES):
            frame = loop[offset:offset + FRAME_SAMPLES]
            recorder.write(frame)
            sentences += len(session.accept_audio(frame))
            if (offset // FRAME_SAMPLES) % PARTIAL_EVERY_FRAMES == 0:
                session.partial()
            fed += frame.size
            if fed / 16000 >= next_report_s:
                wall_s = time.monotonic() - started_s
                print(f"{fed / 16000 / 60:9.1f} | {rss_mb():6.0f} | {sentences:9d} | {wall_s:6.0f}")
                next_report_s += REPORT_EVERY_S
            if fed >= total_samples:
                break
    sentences += len(session.finish())
    print(f"{fed / 16000 / 60:9.1f} | {rss_mb():6.0f} | {sentences:9d} | {time.monotonic() - started_s:6.0f}")
    recorder.discard()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB (the session's recording went to disk: {fed / 16000 / 60:.0f} min)")


if __name__ == "__main__":
    main()
