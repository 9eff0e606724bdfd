"""Live speakers: how much speech gets the right speaker, and what the speaker step adds to
each final, on generated two- and three-voice dialogues, then on real voices.

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

Then the same scores on dialogues of REAL voices (bench/real_dialogues.py): two actors' Dutch
and two actors' Czech lines of the game Fish Fillets NG (Debian archives) in two-, three- and
four-voice dialogues, and Allison Smith's prompts with the MFA author's recordings in an English
two-voice one; 12 turns each, 0.3-1.0 s of silence between lines, each voice enrolled from 15-20
s of its other lines, fed to the same live engine. The engine transcribes English only, so the
Dutch and Czech text comes out as nonsense; only the sentences' cuts and their labels count.

Last, on real speech: pyannote.audio's sample (bench/pyannote_sample.py: 30 s of a two-speaker
phone-like conversation with overlap and short turns, reference turns from its RTTM) is fed to
the live engine as the stream worker builds it by default (the registry's Moonshine loader:
the live VAD onsets, Moonshine base finals) and labelled anonymously. Scored on the reference's
time: each reference turn's time is given to the finals that overlap it; labels and reference
speakers are paired one to one (longest shared time first); the share of all reference speech
time whose final's label is paired with its speaker. Overlapped speech (two speakers at once)
counts once for each speaker, so a final over it is wrong for one of them; the score without
the overlapped time is printed beside it, and so is the share that no final covers at all, and
the most one label per final could score on these finals (what the sentences' cuts allow).

    PYTHONPATH=$PWD python bench/live_speakers.py                   # all three
    PYTHONPATH=$PWD python bench/live_speakers.py --real-dialogues  # the real-voice dialogues alone
    PYTHONPATH=$PWD python bench/live_speakers.py --real-only       # the real conversation alone

bench/live_speaker_rules.py replays the labeler's rule variants on all of these.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pyannote_sample import Turn, sample  # noqa: E402
from bench.real_dialogues import real_dialogues  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.config.speakers import SpeakerSettings  # noqa: E402
from tests.support.voices import conversation, enrollment_clip, true_voice  # noqa: E402
from worker.engines.base import SAMPLE_RATE_HZ, StreamingEngine, StreamOptions  # noqa: E402
from worker.engines.fsmn_vad_lite import FsmnVadLite  # noqa: E402
from worker.engines.live_speakers import LiveSpeakerLabeler  # noqa: E402
from worker.engines.model_files import resolve_vad_model_dir  # noqa: E402
from worker.engines.moonshine_model import MoonshineModel  # noqa: E402
from worker.engines.moonshine_stream import MoonshineStreamEngine  # noqa: E402
from worker.engines.registry import LIVE_ONLY_ENGINES  # noqa: E402
from worker.engines.speaker_embeddings import LIVE_TORCH_THREADS, ResemblyzerEmbedder  # noqa: E402
from worker.engines.voiceprints import normalised_mean  # noqa: E402

FRAME_SAMPLES = 960
DIALOGUES = (["alice", "bob"], ["dave", "carol"], ["alice", "bob", "carol"], ["henry", "ivy", "frank"])
TURNS = 9


def read(path: Path) -> np.ndarray:
    samples, rate = soundfile.read(str(path), dtype="float32")
    assert rate == SAMPLE_RATE_HZ, rate
    return samples


def finals_of(engine: StreamingEngine, samples: np.ndarray) -> list:
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
    return paired_time_s(durations) / total


def paired_time_s(shared_s: dict[tuple[str, str], float]) -> float:
    """The time under labels paired one to one with speakers, longest shared time first (a
    speaker split over two labels, or two speakers under one label, counts the lesser part wrong)."""
    labels_used: set[str] = set()
    speakers_used: set[str] = set()
    right_s = 0.0
    for (label, speaker), duration_s in sorted(shared_s.items(), key=lambda item: -item[1]):
        if label not in labels_used and speaker not in speakers_used:
            labels_used.add(label)
            speakers_used.add(speaker)
            right_s += duration_s
    return right_s


def _overlap_s(start_s: float, end_s: float, other_start_s: float, other_end_s: float) -> float:
    return max(0.0, min(end_s, other_end_s) - max(start_s, other_start_s))


def _speakers_heard(start_s: float, end_s: float, reference: list[Turn]) -> dict[str, float]:
    """Seconds of each reference speaker's turns inside [start_s, end_s]."""
    heard: dict[str, float] = {}
    for turn in reference:
        heard[turn.speaker] = heard.get(turn.speaker, 0.0) + _overlap_s(start_s, end_s, turn.start_s, turn.end_s)
    return heard


def _without_overlap(reference: list[Turn]) -> list[Turn]:
    """The reference turns with the time another speaker talks at once cut out (a turn may
    split in two)."""
    pieces: list[Turn] = []
    for turn in reference:
        spans = [(turn.start_s, turn.end_s)]
        for other in reference:
            if other.speaker == turn.speaker:
                continue
            spans = [piece for start_s, end_s in spans
                     for piece in ((start_s, min(end_s, other.start_s)), (max(start_s, other.end_s), end_s))
                     if piece[1] > piece[0]]
        pieces += [Turn(start_s, end_s, turn.speaker) for start_s, end_s in spans]
    return pieces


def reference_time_score(labelled: list, reference: list[Turn]) -> tuple[float, float]:
    """The share of the reference's speech time under its speaker's label, and the share under
    no final at all. Scored on the reference's time, not on the finals', because a real final
    often holds the end of one speaker's turn and the start of the other's: every second of
    each turn is given to the final it falls in. Labels and speakers are paired one to one,
    longest shared time first, as `anonymous_score` pairs them."""
    shared_s: dict[tuple[str, str], float] = {}
    for start_s, end_s, speaker in labelled:
        for turn in reference:
            shared = _overlap_s(start_s, end_s, turn.start_s, turn.end_s)
            if shared > 0:
                key = (speaker.label, turn.speaker)
                shared_s[key] = shared_s.get(key, 0.0) + shared
    total_s = sum(turn.end_s - turn.start_s for turn in reference)
    return paired_time_s(shared_s) / total_s, 1 - sum(shared_s.values()) / total_s


def segmentation_ceiling(labelled: list, reference: list[Turn]) -> float:
    """The share of reference speech time that a perfect labeler could get right on these
    finals: one label per final, so a final holding the end of one turn and the start of the
    next is wrong for one of them whatever its label. Tells the labeler's errors from the cuts'."""
    best_s = 0.0
    for start_s, end_s, _ in labelled:
        best_s += max(_speakers_heard(start_s, end_s, reference).values(), default=0.0)
    return best_s / sum(turn.end_s - turn.start_s for turn in reference)


def real_conversation(embed: ResemblyzerEmbedder, threshold: float, work: Path) -> None:
    """Anonymous labels on pyannote.audio's real two-speaker sample, printed with each final
    and the reference speakers it overlaps (the place to see a sentence straddle two turns)."""
    samples, reference = sample()
    engine = LIVE_ONLY_ENGINES["moonshine"](Settings(model_cache_dir=work / "models"), None)
    finals = finals_of(engine, samples)
    labelled = label_all(LiveSpeakerLabeler(embed, [], threshold), samples, finals, [])
    print(f"real: pyannote.audio sample.wav ({samples.size / SAMPLE_RATE_HZ:.0f} s, {len(reference)} reference turns, "
          f"{len({turn.speaker for turn in reference})} speakers), {engine.model_name}")
    for final, (start_s, end_s, speaker) in zip(finals, labelled, strict=True):
        heard = _speakers_heard(start_s, end_s, reference)
        shares = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in sorted(heard.items()) if seconds > 0)
        print(f"  {start_s:5.2f}-{end_s:5.2f} s  {speaker.label:10s} [{shares or 'no reference speech'}] {final.text}")
    with_overlap, uncovered = reference_time_score(labelled, reference)
    without_overlap, _ = reference_time_score(labelled, _without_overlap(reference))
    print(f"real two-speaker conversation: {len(finals)} finals, {len({sp.label for *_, sp in labelled})} labels; "
          f"reference speech time under the right label anonymous {with_overlap:.2f} (overlapped speech counted "
          f"for each speaker), {without_overlap:.2f} without the overlapped time; {uncovered:.0%} under no final")
    ceiling = segmentation_ceiling(labelled, reference)
    print(f"  the most any one label per final could score with these finals: {ceiling:.2f} "
          f"(each final given the speaker it holds most of: what the sentences' cuts leave to the labeler)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-only", action="store_true", help="only the real two-speaker conversation")
    parser.add_argument("--real-dialogues", action="store_true", help="only the real-voice dialogues")
    arguments = parser.parse_args()
    threads = int(os.environ.get("BENCH_THREADS", str(LIVE_TORCH_THREADS)))
    import torch

    torch.set_num_threads(threads)
    work = Path(tempfile.gettempdir()) / "oddasr-bench-live-speakers"
    work.mkdir(exist_ok=True)
    embed = ResemblyzerEmbedder()
    embed(np.zeros(SAMPLE_RATE_HZ, dtype=np.float32))  # torch's first call, as the stream worker warms up
    threshold = float(os.environ.get("BENCH_THRESHOLD", SpeakerSettings().live_speaker_match_threshold))
    if arguments.real_dialogues:
        real_voice_dialogues(embed, threshold)
        return
    if not arguments.real_only:
        generated_dialogues(embed, threshold, threads, work)
        real_voice_dialogues(embed, threshold)
    real_conversation(embed, threshold, work)


def generated_engine() -> MoonshineStreamEngine:
    """The live engine the dialogues are fed to: Moonshine finals cut by the live VAD."""
    return MoonshineStreamEngine(MoonshineModel(), FsmnVadLite(resolve_vad_model_dir(""), max_end_silence_ms=800))


def real_voice_dialogues(embed: ResemblyzerEmbedder, threshold: float) -> None:
    """Real voices taking turns (bench/real_dialogues.py), scored as the generated ones."""
    engine = generated_engine()
    print(f"real-voice dialogues (live match threshold {threshold}; Dutch and Czech lines come out as nonsense "
          f"English text, only the sentences' cuts and labels count):")
    for found in real_dialogues():
        prints = [(voice, normalised_mean([embed(found.enrollments[voice])])) for voice in found.voices]
        print(score_dialogue(f"{found.name}, {len(found.truth)} turns", embed, threshold, engine, found.samples,
                             found.truth, prints, []))


def score_dialogue(name: str, embed: ResemblyzerEmbedder, threshold: float, engine: StreamingEngine,
                   samples: np.ndarray, truth: list[tuple[float, float, str]], prints: list[tuple[str, np.ndarray]],
                   costs_ms: list[float], cpu_ms: list[float] | None = None) -> str:
    """One dialogue's line: right speaker anonymous and enrolled, and its last voice left out
    of the enrolled ones (`prints`, named as the voices in `truth`)."""
    finals = finals_of(engine, samples)
    anonymous = anonymous_score(label_all(LiveSpeakerLabeler(embed, [], threshold), samples, finals, costs_ms,
                                          cpu_ms), truth)
    named = label_all(LiveSpeakerLabeler(embed, prints, threshold), samples, finals, costs_ms)
    right = sum(e - s for s, e, sp in named if sp.name == true_voice(truth, s, e))
    enrolled = right / sum(e - s for s, e, _ in named)
    unknown_voice = prints[-1][0]
    partial = label_all(LiveSpeakerLabeler(embed, prints[:-1], threshold), samples, finals, costs_ms)
    unknown_speech = [(e - s, sp) for s, e, sp in partial if true_voice(truth, s, e) == unknown_voice]
    wrongly_named = sum(d for d, sp in unknown_speech if sp.name is not None) / sum(d for d, _ in unknown_speech)
    margin = max(float(np.dot(embed(samples[f.start_ms * 16:f.end_ms * 16]), vector))
                 for f in finals if true_voice(truth, f.start_ms / 1000, f.end_ms / 1000) == unknown_voice
                 for _, vector in prints[:-1])
    return (f"{name:24s} {len(finals):2d} finals: right speaker anonymous {anonymous:.2f}, "
            f"enrolled {enrolled:.2f}; {unknown_voice} not enrolled: {wrongly_named:.0%} of its speech named "
            f"(closest {margin:.2f})")


def generated_dialogues(embed: ResemblyzerEmbedder, threshold: float, threads: int, work: Path) -> None:
    """The espeak-ng dialogues: anonymous, enrolled and unknown voices, and the step's cost."""
    engine = generated_engine()
    costs_ms: list[float] = []
    cpu_ms: list[float] = []
    print(f"live match threshold {threshold}; {TURNS} turns per dialogue; Moonshine finals, Resemblyzer GE2E, "
          f"{threads} torch threads")
    for voices in DIALOGUES:
        path, truth = conversation(voices, work / f"dialogue-{'-'.join(voices)}.wav", turns=TURNS)
        prints = [(name, normalised_mean([embed(read(enrollment_clip(name, work / f"enroll-{name}.wav")))]))
                  for name in voices]
        print(score_dialogue(" + ".join(voices), embed, threshold, engine, read(path), truth, prints, costs_ms, cpu_ms))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"speaker step per final: p50 {np.percentile(costs_ms, 50):.0f} ms, p95 {np.percentile(costs_ms, 95):.0f} ms,"
          f" max {max(costs_ms):.0f} ms ({len(costs_ms)} finals)")
    print(f"  of which CPU time of the labelling thread (what it costs without other load): "
          f"p50 {np.percentile(cpu_ms, 50):.0f} ms, p95 {np.percentile(cpu_ms, 95):.0f} ms ({len(cpu_ms)} finals)")


if __name__ == "__main__":
    main()
