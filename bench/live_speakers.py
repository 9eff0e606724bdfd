"""Live speakers: how much speech gets the right speaker, and what the speaker step adds to
each final, on generated two- and three-voice dialogues.

Each dialogue (tests/support/voices.py: espeak-ng voices taking turns) is fed to the Moonshine
live engine directly in 60 ms frames, as a session would get it; every final is labelled by
the session's speaker step (worker/engines/live_speakers.py with Resemblyzer GE2E, the
embedder voiceprints are made with), exactly as the stream worker does. Scores:

- anonymous: labels and voices are paired one to one (longest shared speech first); speech
  time (final durations) under its voice's label, over all speech;
- enrolled: the dialogue's voices are enrolled (their enrollment clips, other sentences), and
  a final counts as right only when it carries its true voice's name;
- unknown: one voice is left out of the enrolled ones; the share of its speech that was given
  an enrolled name at the default `live_speaker_match_threshold` (the goal is 0 %), and the
  highest similarity any of its sentences had to an enrolled voiceprint (the margin);
- added latency: the speaker step's wall time per final, and its thread's CPU time (what it
  costs a machine that is not busy with other work) (one torch thread, as stream workers run it;
  BENCH_THREADS=2 for two), p50 / p95 / max, and the machine's load average while it ran.

    PYTHONPATH=$PWD python bench/live_speakers.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.config.speakers import SpeakerSettings  # noqa: E402
from tests.support.voices import conversation, enrollment_clip, true_voice  # noqa: E402
from worker.engines.base import SAMPLE_RATE_HZ, StreamOptions  # noqa: E402
from worker.engines.fsmn_vad_lite import FsmnVadLite  # noqa: E402
from worker.engines.live_speakers import LiveSpeakerLabeler  # noqa: E402
from worker.engines.model_files import resolve_vad_model_dir  # noqa: E402
from worker.engines.moonshine_model import MoonshineModel  # noqa: E402
from worker.engines.moonshine_stream import MoonshineStreamEngine  # noqa: E402
from worker.engines.speaker_embeddings import LIVE_TORCH_THREADS, ResemblyzerEmbedder  # noqa: E402
from worker.engines.voiceprints import normalised_mean  # noqa: E402

FRAME_SAMPLES = 960
DIALOGUES = (["alice", "bob"], ["dave", "carol"], ["alice", "bob", "carol"], ["henry", "ivy", "frank"])
TURNS = 9


def read(path: Path) -> np.ndarray:
    samples, rate = soundfile.read(str(path), dtype="float32")
    assert rate == SAMPLE_RATE_HZ, rate
    return samples


def finals_of(engine: MoonshineStreamEngine, samples: np.ndarray) -> list:
    session = engine.open_stream(StreamOptions(language="en", want_partials=False))
    finals = []
    for start in range(0, samples.size, FRAME_SAMPLES):
        finals += session.accept_audio(samples[start:start + FRAME_SAMPLES])
    return finals + session.finish()


def label_all(labeler: LiveSpeakerLabeler, samples: np.ndarray, finals: list, costs_ms: list[float],
              cpu_ms: list[float] | None = None) -> list:
    labelled = []
    for final in finals:
        started, started_cpu = time.perf_counter(), time.thread_time()
        speaker = labeler.label(samples[final.start_ms * 16:final.end_ms * 16])
        costs_ms.append((time.perf_counter() - started) * 1000)
        if cpu_ms is not None:
            cpu_ms.append((time.thread_time() - started_cpu) * 1000)
        labelled.append((final.start_ms / 1000, final.end_ms / 1000, speaker))
    return labelled


def anonymous_score(labelled: list, truth: list) -> float:
    """Labels and voices paired one to one, longest shared speech first (a voice split over two
    labels, or two voices under one label, counts the lesser part wrong)."""
    durations: dict[tuple[str, str], float] = {}
    total = 0.0
    for start_s, end_s, speaker in labelled:
        voice = true_voice(truth, start_s, end_s) or "?"
        durations[(speaker.label, voice)] = durations.get((speaker.label, voice), 0.0) + end_s - start_s
        total += end_s - start_s
    labels_used: set[str] = set()
    voices_used: set[str] = set()
    right = 0.0
    for (label, voice), duration in sorted(durations.items(), key=lambda item: -item[1]):
        if label not in labels_used and voice not in voices_used:
            labels_used.add(label)
            voices_used.add(voice)
            right += duration
    return right / total


def main() -> None:
    threads = int(os.environ.get("BENCH_THREADS", str(LIVE_TORCH_THREADS)))
    import torch

    torch.set_num_threads(threads)
    work = Path(tempfile.gettempdir()) / "oddasr-bench-live-speakers"
    work.mkdir(exist_ok=True)
    embed = ResemblyzerEmbedder()
    embed(np.zeros(SAMPLE_RATE_HZ, dtype=np.float32))  # torch's first call, as the stream worker warms up
    engine = MoonshineStreamEngine(MoonshineModel(), FsmnVadLite(resolve_vad_model_dir(""), max_end_silence_ms=800))
    threshold = float(os.environ.get("BENCH_THRESHOLD", SpeakerSettings().live_speaker_match_threshold))
    costs_ms: list[float] = []
    cpu_ms: list[float] = []
    print(f"live match threshold {threshold}; {TURNS} turns per dialogue; Moonshine finals, Resemblyzer GE2E, "
          f"{threads} torch threads")
    for voices in DIALOGUES:
        path, truth = conversation(voices, work / f"dialogue-{'-'.join(voices)}.wav", turns=TURNS)
        samples = read(path)
        finals = finals_of(engine, samples)
        anonymous = anonymous_score(label_all(LiveSpeakerLabeler(embed, [], threshold), samples, finals, costs_ms,
                                              cpu_ms), truth)
        prints = [(name, normalised_mean([embed(read(enrollment_clip(name, work / f"enroll-{name}.wav")))]))
                  for name in voices]
        named = label_all(LiveSpeakerLabeler(embed, prints, threshold), samples, finals, costs_ms)
        right = sum(e - s for s, e, sp in named if sp.name == true_voice(truth, s, e))
        enrolled = right / sum(e - s for s, e, _ in named)
        unknown_voice = voices[-1]
        partial = label_all(LiveSpeakerLabeler(embed, prints[:-1], threshold), samples, finals, costs_ms)
        unknown_speech = [(e - s, sp) for s, e, sp in partial if true_voice(truth, s, e) == unknown_voice]
        wrongly_named = sum(d for d, sp in unknown_speech if sp.name is not None) / sum(d for d, _ in unknown_speech)
        margin = max(float(np.dot(embed(samples[f.start_ms * 16:f.end_ms * 16]), vector))
                     for f in finals if true_voice(truth, f.start_ms / 1000, f.end_ms / 1000) == unknown_voice
                     for _, vector in prints[:-1])
        print(f"{' + '.join(voices):24s} {len(finals):2d} finals: right speaker anonymous {anonymous:.2f}, "
              f"enrolled {enrolled:.2f}; {unknown_voice} not enrolled: {wrongly_named:.0%} of its speech named "
              f"(closest {margin:.2f})")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"speaker step per final: p50 {np.percentile(costs_ms, 50):.0f} ms, p95 {np.percentile(costs_ms, 95):.0f} ms,"
          f" max {max(costs_ms):.0f} ms ({len(costs_ms)} finals)")
    print(f"  of which CPU time of the labelling thread (what it costs without other load): "
          f"p50 {np.percentile(cpu_ms, 50):.0f} ms, p95 {np.percentile(cpu_ms, 95):.0f} ms ({len(cpu_ms)} finals)")


if __name__ == "__main__":
    main()
