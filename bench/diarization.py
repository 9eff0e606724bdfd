"""Speaker-label accuracy on a generated two-voice dialogue with known turns.

Prints the share of speech time given the right speaker (after the best one-to-one mapping
of labels), with the speaker count estimated and with it given (min=max=2).
Run: `.venv/bin/python bench/diarization.py [--model tiny.en]`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CACHE_DIR  # noqa: E402
from shared.audio import decode_16k_mono  # noqa: E402
from shared.config import Settings  # noqa: E402
from tests.support.speech import REFERENCE_SENTENCES, make_dialogue, speaker_accuracy  # noqa: E402
from worker.engines.base import TranscriptionOptions  # noqa: E402
from worker.engines.registry import load_engine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--turns", type=int, default=16)
    args = parser.parse_args()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    sentences = [REFERENCE_SENTENCES[i % len(REFERENCE_SENTENCES)] for i in range(args.turns)]
    path, turns = make_dialogue(sentences, CACHE_DIR / f"dialogue-{args.turns}.wav", gap_s=0.6)
    audio = decode_16k_mono(path)
    engine = load_engine(Settings(data_dir=Path(tempfile.mkdtemp()), whisper_model=args.model, cpu_threads=2))
    print(f"dialogue: {len(turns)} turns, 2 voices, {audio.size / 16000:.1f} s; engine whisper {args.model}")
    for label, options in (("estimated speaker count", TranscriptionOptions(diarize=True)),
                           ("min_speakers=max_speakers=2", TranscriptionOptions(diarize=True, min_speakers=2,
                                                                                max_speakers=2))):
        started_s = time.perf_counter()
        transcript = engine.transcribe(audio, options)
        elapsed_s = time.perf_counter() - started_s
        accuracy = speaker_accuracy(turns, [(s.start_s, s.end_s, s.speaker) for s in transcript.segments])
        speakers = len({s.speaker for s in transcript.segments})
        print(f"{label}: {speakers} speakers found, {accuracy * 100:.1f} % of speech time labelled right, "
              f"{elapsed_s:.2f} s (RTF {elapsed_s / (audio.size / 16000):.3f})")
    plain_s = time.perf_counter()
    engine.transcribe(audio, TranscriptionOptions())
    print(f"without diarization: {time.perf_counter() - plain_s:.2f} s")


if __name__ == "__main__":
    main()
