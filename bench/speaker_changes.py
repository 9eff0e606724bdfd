"""Can a speaker change inside an open live sentence be found in time to cut the sentence there,
and would the cut raise the share of speech under the right live speaker label?

An offline experiment (issue 19). A live final carries one speaker label, and a sentence that
holds two voices (no 800 ms pause between them) is wrong for one of them: on pyannote.audio's
real two-speaker sample that caps the anonymous score at 0.79. Here, every `hop` of session
audio, the last `window` of the open sentence is embedded with the worker's speaker model
(Resemblyzer GE2E, one torch thread) and compared with the sentence's voice so far (the mean of
its earlier windows that do not overlap the newest); `confirm` hops in a row under `threshold`
and the sentence is cut where the first of those windows starts, the next sentence opening
there. The live engine's own sentences (the registry's Moonshine loader, as the stream worker
builds it) are cut at the detected changes, and the pieces labelled in order by the session's
labeller (worker/engines/live_speakers.py), as the session would label the finals. Variant
`known`: cut only where the newest window is closer to another voice the session already knows
than to the sentence's voice (no false cut on one voice, by construction).

Audio:
- real: pyannote.audio's sample (bench/pyannote_sample.py), scored on its reference turns;
- no-pause dialogues: tests/support/voices.py's two-voice dialogues with each turn's silence cut
  off, so the next voice starts the instant the last stops (the case the cut is for);
- one speaker: moonshine_voice's two recordings and the held-out monologues and reading
  (bench/heldout_speech.py): every cut there is a false cut.

Printed per setting: true changes inside a sentence found (a cut within `MATCH_S` of one),
the detection's delay after the change and the cut's error, false cuts; on one-speaker speech
cuts per minute and labels beyond the first; the anonymous score (reference speech time under
the right label, bench/live_speakers.py's scoring) without and with the cuts, and the one-label
ceiling of the cut sentences. Then the check's cost per second of audio.

    PYTHONPATH=$PWD python bench/speaker_changes.py
"""

from __future__ import annotations

import pickle
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.live_speakers import finals_of, reference_time_score, segmentation_ceiling  # noqa: E402
from bench.pyannote_sample import Turn, sample  # noqa: E402
from worker.engines.base import SAMPLE_RATE_HZ  # noqa: E402
from worker.engines.live_speakers import LiveSpeakerLabeler  # noqa: E402

WORK = Path(tempfile.gettempdir()) / "oddasr-bench-speaker-changes"
#: A cut this close to a true change found it.
MATCH_S = 1.0
#: A true change this close to a sentence's edge is not inside it.
EDGE_S = 0.3
NO_PAUSE_DIALOGUES = (["alice", "bob"], ["dave", "carol"], ["henry", "ivy"], ["frank", "grace"])
#: Below this a sample counts as silence when a generated turn's padding is cut off.
SILENCE_LEVEL = 0.02


@dataclass
class Recording:
    name: str
    samples: np.ndarray
    turns: list[Turn]  # one turn for one-speaker speech
    finals: list[tuple[int, int]]  # the live engine's sentences, (start_ms, end_ms)

    @property
    def speakers(self) -> int:
        return len({turn.speaker for turn in self.turns})


@dataclass(frozen=True)
class Setting:
    hop_ms: int
    window_ms: int
    threshold: float
    confirm: int = 1
    #: The sentence's voice so far must have this much speech before the newest window.
    min_reference_ms: int = 1000
    known: bool = False

    def __str__(self) -> str:
        return (f"hop {self.hop_ms} ms, window {self.window_ms} ms, under {self.threshold} x{self.confirm}"
                + (", to a known voice" if self.known else ""))


SETTINGS = [Setting(hop, 1500, threshold, confirm) for hop in (250, 500) for threshold in (0.6, 0.65, 0.7, 0.75)
            for confirm in (1, 2)] + [Setting(hop, 1500, 0.75, 1, known=True) for hop in (250, 500)]


def without_pauses(audio: np.ndarray, truth: list[tuple[float, float, str]]) -> tuple[np.ndarray, list[Turn]]:
    """The dialogue with each turn's leading and trailing silence cut off: the next voice
    starts the moment the last one stops (espeak-ng pads its sentences with silence)."""
    pieces, turns, position = [], [], 0
    for start_s, end_s, voice in truth:
        turn = audio[int(start_s * SAMPLE_RATE_HZ):int(end_s * SAMPLE_RATE_HZ)]
        loud = np.flatnonzero(np.abs(turn) > SILENCE_LEVEL)
        turn = turn[loud[0]:loud[-1] + 1]
        pieces.append(turn)
        turns.append(Turn(position / SAMPLE_RATE_HZ, (position + turn.size) / SAMPLE_RATE_HZ, voice))
        position += turn.size
    return np.concatenate(pieces), turns


def recordings() -> list[Recording]:
    """Each recording with the live engine's sentences, computed once and cached."""
    cache = WORK / "recordings.pickle"
    if cache.exists():
        return pickle.loads(cache.read_bytes())  # noqa: S301 - our own cache file
    import soundfile

    from bench.heldout_speech import load
    from shared.audio import decode_16k_mono
    from shared.config import Settings
    from tests.support.human_speech import human_speech_dir
    from tests.support.voices import conversation
    from worker.engines.registry import LIVE_ONLY_ENGINES

    WORK.mkdir(exist_ok=True)
    engine = LIVE_ONLY_ENGINES["moonshine"](Settings(model_cache_dir=WORK / "models"), None)

    def sentences(audio: np.ndarray) -> list[tuple[int, int]]:
        return [(final.start_ms, final.end_ms) for final in finals_of(engine, audio)]

    samples, reference = sample()
    found = [Recording("real-pyannote", samples, reference, sentences(samples))]
    for voices in NO_PAUSE_DIALOGUES:
        path, truth = conversation(voices, WORK / f"dialogue-{'-'.join(voices)}.wav", turns=8, gap_s=0.0)
        audio, turns = without_pauses(soundfile.read(str(path), dtype="float32")[0], truth)
        found.append(Recording("+".join(voices), audio, turns, sentences(audio)))
    assets = human_speech_dir()
    if assets is None:
        raise SystemExit("the moonshine_voice wheel (requirements/models.txt) is not installed")
    singles = [(name, decode_16k_mono(assets / name)) for name in ("two_cities.wav", "beckett.wav")]
    singles += [(utterance.name, utterance.samples) for utterance in load(["spontaneous", "librivox"])]
    for name, audio in singles:
        found.append(Recording(name, audio, [Turn(0.0, audio.size / SAMPLE_RATE_HZ, "one")], sentences(audio)))
    cache.write_bytes(pickle.dumps(found))
    return found


_EMBEDDER = None


def embedder():  # type: ignore[no-untyped-def]
    """The stream worker's speaker embedder, on its one live torch thread."""
    global _EMBEDDER
    if _EMBEDDER is None:
        import torch

        from worker.engines.speaker_embeddings import LIVE_TORCH_THREADS, ResemblyzerEmbedder

        torch.set_num_threads(LIVE_TORCH_THREADS)
        _EMBEDDER = ResemblyzerEmbedder()
    return _EMBEDDER


def window_embeddings(recording: Recording, hop_ms: int, window_ms: int) -> dict[int, np.ndarray]:
    """On the session clock's `hop_ms` grid inside each sentence, the embedding of the
    `window_ms` before that time (cached: the settings share them)."""
    cache = WORK / f"windows-{recording.name}-{hop_ms}-{window_ms}.pickle"
    if cache.exists():
        return pickle.loads(cache.read_bytes())  # noqa: S301 - our own cache file
    times: set[int] = set()
    for start_ms, end_ms in recording.finals:
        times.update(range(_first_check_ms(start_ms, hop_ms, window_ms), end_ms + 1, hop_ms))
    windows = {at_ms: np.asarray(embedder()(recording.samples[(at_ms - window_ms) * 16:at_ms * 16]), dtype=np.float64)
               for at_ms in sorted(times)}
    cache.write_bytes(pickle.dumps(windows))
    return windows


def _first_check_ms(start_ms: int, hop_ms: int, window_ms: int) -> int:
    return (start_ms + window_ms + hop_ms - 1) // hop_ms * hop_ms


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / (np.linalg.norm(vector) or 1.0)


def cut_and_label(recording: Recording, setting: Setting) -> tuple[list[tuple[int, int]], list]:
    """The cuts (detected at ms, cut at ms) and the labelled pieces (start_s, end_s, speaker),
    sentence after sentence as a session would make them."""
    windows = window_embeddings(recording, setting.hop_ms, setting.window_ms)
    labeler = LiveSpeakerLabeler(embedder(), [], 0.85)
    cuts: list[tuple[int, int]] = []
    labelled = []
    hop_ms, window_ms = setting.hop_ms, setting.window_ms

    def close(start_ms: int, end_ms: int) -> None:
        labelled.append((start_ms / 1000, end_ms / 1000, labeler.label(recording.samples[start_ms * 16:end_ms * 16])))

    for start_ms, end_ms in recording.finals:
        open_ms = start_ms
        under: list[int] = []
        for at_ms in range(_first_check_ms(start_ms, hop_ms, window_ms), end_ms + 1, hop_ms):
            reference = [windows[end] for end in range(at_ms - window_ms, open_ms + window_ms - 1, -hop_ms)
                         if end in windows and end - window_ms >= open_ms]
            if at_ms - window_ms - open_ms < setting.min_reference_ms or not reference:
                continue
            voice = _unit(np.mean(reference, axis=0))
            changed = float(np.dot(voice, windows[at_ms])) < setting.threshold
            if changed and setting.known:
                heard = [known for known in labeler._voices if known.embeddings]  # noqa: SLF001 - an experiment
                own = max(heard, key=lambda known: known.similarity_to(voice), default=None)
                new = max(heard, key=lambda known: known.similarity_to(windows[at_ms]), default=None)
                changed = (own is not None and new is not own
                           and new.similarity_to(windows[at_ms]) > own.similarity_to(windows[at_ms]))
            under = [*under, at_ms] if changed else []
            if len(under) >= setting.confirm:
                cut_ms = under[0] - window_ms
                cuts.append((at_ms, cut_ms))
                close(open_ms, cut_ms)
                open_ms, under = cut_ms, []
        close(open_ms, end_ms)
    return cuts, labelled


def true_changes(turns: list[Turn]) -> list[float]:
    """Where a turn starts while the turn heard last (the one that ended latest among those
    begun before) is another speaker's."""
    changes = []
    for turn in turns:
        before = [other for other in turns if other is not turn and other.start_s < turn.start_s]
        if before and max(before, key=lambda other: other.end_s).speaker != turn.speaker:
            changes.append(turn.start_s)
    return sorted(changes)


@dataclass
class Tally:
    changes: int = 0
    found: int = 0
    false_cuts: int = 0
    delays_s: list[float] | None = None
    errors_s: list[float] | None = None

    def add(self, recording: Recording, cuts: list[tuple[int, int]]) -> None:
        self.delays_s = self.delays_s or []
        self.errors_s = self.errors_s or []
        changes = [change for change in true_changes(recording.turns)
                   if any(s / 1000 + EDGE_S < change < e / 1000 - EDGE_S for s, e in recording.finals)]
        used: set[int] = set()
        for change in changes:
            match = next((i for i, (_, cut_ms) in enumerate(cuts)
                          if i not in used and abs(cut_ms / 1000 - change) <= MATCH_S), None)
            if match is not None:
                used.add(match)
                self.delays_s.append(cuts[match][0] / 1000 - change)
                self.errors_s.append(cuts[match][1] / 1000 - change)
        self.changes += len(changes)
        self.found += len(used)
        self.false_cuts += len(cuts) - len(used)


def evaluate(recordings_: list[Recording], setting: Setting) -> str:
    real, dialogues = Tally(), Tally()
    scores: dict[str, list[tuple[float, float, float]]] = {"real": [], "dialogues": []}
    one_speaker_cuts, extra_labels, one_speaker_s = 0, 0, 0.0
    for recording in recordings_:
        cuts, labelled = cut_and_label(recording, setting)
        if recording.speakers == 1:
            one_speaker_cuts += len(cuts)
            extra_labels += len({speaker.label for *_, speaker in labelled}) - 1
            one_speaker_s += recording.samples.size / SAMPLE_RATE_HZ
            continue
        kind = "real" if recording.name.startswith("real") else "dialogues"
        (real if kind == "real" else dialogues).add(recording, cuts)
        uncut = cut_and_label(recording, Setting(setting.hop_ms, setting.window_ms, -2.0))[1]
        scores[kind].append((reference_time_score(uncut, recording.turns)[0],
                             reference_time_score(labelled, recording.turns)[0],
                             segmentation_ceiling(labelled, recording.turns)))
    real_score, dialogue_score = (np.mean(scores[kind], axis=0) for kind in ("real", "dialogues"))
    delays = (real.delays_s or []) + (dialogues.delays_s or [])
    errors = np.abs((real.errors_s or []) + (dialogues.errors_s or []))
    timing = (f"delay median {np.median(delays):.2f} s (max {max(delays):.2f}), cut error median "
              f"{np.median(errors):.2f} s" if delays else "")
    return (f"{setting}:\n"
            f"    changes found: real {real.found}/{real.changes}, no-pause dialogues {dialogues.found}/"
            f"{dialogues.changes}; {timing}; false cuts real {real.false_cuts}, dialogues {dialogues.false_cuts}; "
            f"one speaker {one_speaker_cuts} cuts in {one_speaker_s / 60:.1f} min, {extra_labels} extra labels\n"
            f"    right label: real {real_score[0]:.2f} -> {real_score[1]:.2f} (ceiling {real_score[2]:.2f}), "
            f"no-pause dialogues {dialogue_score[0]:.2f} -> {dialogue_score[1]:.2f} (ceiling {dialogue_score[2]:.2f})")


def check_cost_ms(recording: Recording, window_ms: int, count: int = 60) -> list[float]:
    """The CPU time (this thread) of one window's embedding, `count` times."""
    embed = embedder()
    embed(recording.samples[:window_ms * 16])
    costs = []
    for index in range(count):
        start = (index * 250 * 16) % (recording.samples.size - window_ms * 16)
        started = time.thread_time()
        embed(recording.samples[start:start + window_ms * 16])
        costs.append((time.thread_time() - started) * 1000)
    return costs


def main() -> None:
    found = recordings()
    for recording in found:
        print(f"{recording.name}: {recording.samples.size / SAMPLE_RATE_HZ:.1f} s, {len(recording.finals)} live "
              f"sentences, {recording.speakers} speaker(s)")
    for setting in SETTINGS:
        print(evaluate(found, setting), flush=True)
    costs = check_cost_ms(found[0], 1500)
    print(f"one check (a 1.5 s window's GE2E embedding, one thread): CPU p50 {np.percentile(costs, 50):.1f} ms, "
          f"p95 {np.percentile(costs, 95):.1f} ms; per second of speech {np.percentile(costs, 50) * 4:.0f} ms at a "
          f"250 ms hop, {np.percentile(costs, 50) * 2:.0f} ms at 500 ms")


if __name__ == "__main__":
    main()
