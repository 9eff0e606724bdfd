"""How accurate each live engine's finals are, on real English speech no model wheel ships.

    .venv/bin/python -m bench.live_wer                       # every corpus, Moonshine and Whisper
    .venv/bin/python -m bench.live_wer --corpora librivox spontaneous --engines moonshine

The utterances of each corpus (bench/heldout_speech.py: 1,900 words of telephony prompts, a
LibriVox reading, unscripted monologues) are joined into streams of about two minutes with a
second of silence between them, the way a person reads prompts into a live session, and each
stream is fed 100 ms at a time to a session of the engine the stream worker loads with this
machine's settings (`ODDASR_*`; defaults: Moonshine tiny for English, Whisper base otherwise).
Finals do not depend on partials or on pacing (the sentence cuts run on the stream's own clock),
so sessions run without partials, as fast as the CPU goes: the figure is the live path's
accuracy, not its latency (bench/streaming.py measures that, paced in real time).

Prints per corpus and in all: words, WER of each engine, and its CPU seconds per second of audio.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import jiwer
import numpy as np

from bench.heldout_speech import CORPORA, SAMPLE_RATE_HZ, Utterance, load, normalized
from shared.config import Settings
from worker.engines.base import StreamingEngine, StreamOptions
from worker.engines.registry import load_engine, load_live_engines

STREAM_MAX_S = 120.0
GAP_S = 1.0
CHUNK_SAMPLES = SAMPLE_RATE_HZ // 10


@dataclass
class Scored:
    references: list[str] = field(default_factory=list)
    hypotheses: list[str] = field(default_factory=list)
    cpu_s: float = 0.0
    audio_s: float = 0.0

    @property
    def wer(self) -> float:
        return float(jiwer.wer(self.references, self.hypotheses))

    @property
    def words(self) -> int:
        return sum(len(reference.split()) for reference in self.references)


def streams(utterances: list[Utterance]) -> list[list[Utterance]]:
    """Consecutive utterances grouped into streams of at most STREAM_MAX_S."""
    grouped: list[list[Utterance]] = []
    length_s = STREAM_MAX_S
    for utterance in utterances:
        if length_s + utterance.samples.size / SAMPLE_RATE_HZ > STREAM_MAX_S:
            grouped.append([])
            length_s = 0.0
        grouped[-1].append(utterance)
        length_s += utterance.samples.size / SAMPLE_RATE_HZ + GAP_S
    return grouped


def stream_finals(engine: StreamingEngine, audio: np.ndarray) -> tuple[str, float]:
    """The session's finals joined, and the CPU seconds they took."""
    started_s = time.process_time()
    session = engine.open_stream(StreamOptions(language="en", want_partials=False))
    finals: list[str] = []
    for offset in range(0, audio.size, CHUNK_SAMPLES):
        finals.extend(event.text for event in session.accept_audio(audio[offset:offset + CHUNK_SAMPLES])
                      if event.kind == "final")
    finals.extend(event.text for event in session.finish() if event.kind == "final")
    return " ".join(finals), time.process_time() - started_s


def score(engine: StreamingEngine, grouped: list[list[Utterance]]) -> Scored:
    scored = Scored()
    gap = np.zeros(int(GAP_S * SAMPLE_RATE_HZ), dtype=np.float32)
    for group in grouped:
        audio = np.concatenate([part for utterance in group for part in (gap, utterance.samples)] + [gap])
        text, cpu_s = stream_finals(engine, audio)
        scored.references.append(normalized(" ".join(utterance.text for utterance in group)))
        scored.hypotheses.append(normalized(text))
        scored.cpu_s += cpu_s
        scored.audio_s += audio.size / SAMPLE_RATE_HZ
    return scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", nargs="+", choices=sorted(CORPORA), default=list(CORPORA))
    parser.add_argument("--engines", nargs="+", choices=["moonshine", "whisper"], default=["moonshine", "whisper"])
    args = parser.parse_args()
    settings = Settings()
    live = load_live_engines(settings, load_engine(settings), None)
    engines = {"moonshine": live.moonshine, "whisper": live.general}
    by_corpus = {name: streams(load([name])) for name in args.corpora}
    totals: dict[str, Scored] = {}
    print(f"{'corpus':<12} {'words':>6}  " + "  ".join(f"{name + ' WER':>14} {'CPU s/s':>8}" for name in args.engines))
    for corpus, grouped in by_corpus.items():
        row = []
        for name in args.engines:
            engine = engines[name]
            if engine is None:
                raise SystemExit(f"this machine's settings load no {name} live engine")
            scored = score(engine, grouped)
            total = totals.setdefault(name, Scored())
            total.references += scored.references
            total.hypotheses += scored.hypotheses
            total.cpu_s += scored.cpu_s
            total.audio_s += scored.audio_s
            row.append(scored)
        print(f"{corpus:<12} {row[0].words:>6}  "
              + "  ".join(f"{s.wer:>14.3f} {s.cpu_s / s.audio_s:>8.3f}" for s in row), flush=True)
    first = totals[args.engines[0]]
    print(f"{'all':<12} {first.words:>6}  "
          + "  ".join(f"{totals[n].wer:>14.3f} {totals[n].cpu_s / totals[n].audio_s:>8.3f}" for n in args.engines))
    print(f"models: moonshine={getattr(live.moonshine, 'model_name', None)}"
          f" whisper={getattr(live.general, 'model_name', None)}")


if __name__ == "__main__":
    main()
