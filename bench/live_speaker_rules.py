"""Which rule for joining a live sentence to a session's voice scores best on generated AND
real voices? An offline experiment (issue 19) on worker/engines/live_speakers.py's labeler.

Each set's live finals (bench/live_speakers.py's paths: the generated and real-voice dialogues
through the live engine it feeds them to, pyannote.audio's real sample and the one-voice
recordings through the registry's Moonshine loader) are embedded once with Resemblyzer GE2E, both
their last `MAX_EMBED_S` (what the labeler embeds) and whole, and cached. Each rule then replays
the session's labelling on those embeddings through the real `LiveSpeakerLabeler`, with only
its choice of voice (`_voice_of`) or its naming replaced (the shipped rule's replay is checked
against the labeler itself), and is scored as bench/live_speakers.py scores:

- dialogues: right speaker anonymous, enrolled, and the unknown voice's speech given an
  enrolled name (at the default match threshold);
- pyannote's sample: reference speech time under the right label;
- one voice (MFA's three monologues, moonshine_voice's two readings, 20 of Allison's prompts in
  a row): the labels the session makes (1 is right).

A second table compares the rules on a wider sample of real voices, the fish dialogues of ten
more levels (bench/real_dialogues.py's `more_fish_dialogues`): means, and how many dialogues
each rule does worse or better on than the shipped one.

Rules: `named on the whole` compares a sentence of a voice not named yet with the voiceprints
on the whole sentence, not its end (the voice still chosen on the end); `join T` joins the
closest voice's mean at cosine >= T (the shipped rule at 0.78); `whole` embeds the whole
sentence rather than its end; `nearest` takes a voice's similarity as the best of its mean's
and its closest sentence's; `margin L/M` also joins at >= L when the closest voice beats the
second by at least M. Then the shipped rule with enrolled voiceprints matched at other
thresholds than the default `live_speaker_match_threshold`.

    PYTHONPATH=$PWD python bench/live_speaker_rules.py
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.live_speakers import (  # noqa: E402
    DIALOGUES,
    TURNS,
    anonymous_score,
    finals_of,
    generated_engine,
    read,
    reference_time_score,
)
from bench.pyannote_sample import Turn, sample  # noqa: E402
from bench.real_dialogues import SAMPLE_RATE_HZ, more_fish_dialogues, real_dialogues  # noqa: E402
from shared.config.speakers import SpeakerSettings  # noqa: E402
from worker.engines import live_speakers  # noqa: E402
from worker.engines.live_speakers import LiveSpeakerLabeler, _Voice

WORK = Path("/tmp/oddasr-bench-live-speakers")
ALLISON_PROMPTS = 20


@dataclass
class Recording:
    """One set's finals, their embeddings (end and whole) and what they are scored against."""

    name: str
    kind: str  # "dialogue", "more" (a dialogue of the wider sample), "reference" or "one voice"
    spans_s: list[tuple[float, float]]
    sizes: list[int]  # samples in each final
    tails: list[np.ndarray]
    wholes: list[np.ndarray]
    truth: list[tuple[float, float, str]] = field(default_factory=list)
    reference: list[Turn] = field(default_factory=list)
    prints: list[tuple[str, np.ndarray]] = field(default_factory=list)


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / (np.linalg.norm(vector) or 1.0)


def _recording(name: str, kind: str, samples: np.ndarray, finals: list, embed: Callable, **scored: object) -> Recording:
    clips = [samples[final.start_ms * 16:final.end_ms * 16] for final in finals]
    tail_samples = int(live_speakers.MAX_EMBED_S * SAMPLE_RATE_HZ)
    return Recording(name, kind, [(f.start_ms / 1000, f.end_ms / 1000) for f in finals], [c.size for c in clips],
                     [_unit(embed(clip[-tail_samples:])) for clip in clips], [_unit(embed(clip)) for clip in clips],
                     **scored)  # type: ignore[arg-type]


def recordings() -> list[Recording]:
    """Every set, embedded once and cached."""
    cache = WORK / "rules.pickle"
    if cache.exists():
        return [Recording(**fields) for fields in pickle.loads(cache.read_bytes())]  # noqa: S301 - our own cache
    import torch

    from bench.heldout_speech import load
    from shared.audio import decode_16k_mono
    from shared.config import Settings
    from tests.support.human_speech import human_speech_dir
    from tests.support.voices import conversation, enrollment_clip
    from worker.engines.registry import LIVE_ONLY_ENGINES
    from worker.engines.speaker_embeddings import LIVE_TORCH_THREADS, ResemblyzerEmbedder
    from worker.engines.voiceprints import normalised_mean

    torch.set_num_threads(LIVE_TORCH_THREADS)
    WORK.mkdir(exist_ok=True)
    embed = ResemblyzerEmbedder()
    engine = generated_engine()
    found = []
    for voices in DIALOGUES:
        path, truth = conversation(voices, WORK / f"dialogue-{'-'.join(voices)}.wav", turns=TURNS)
        prints = [(name, normalised_mean([embed(read(enrollment_clip(name, WORK / f"enroll-{name}.wav")))]))
                  for name in voices]
        samples = read(path)
        found.append(_recording(" + ".join(voices), "dialogue", samples, finals_of(engine, samples), embed,
                                truth=truth, prints=prints))
    for dialogue in real_dialogues():
        prints = [(voice, normalised_mean([embed(dialogue.enrollments[voice])])) for voice in dialogue.voices]
        found.append(_recording(dialogue.name, "dialogue", dialogue.samples, finals_of(engine, dialogue.samples),
                                embed, truth=dialogue.truth, prints=prints))
    live = LIVE_ONLY_ENGINES["moonshine"](Settings(model_cache_dir=WORK / "models"), None)
    samples, reference = sample()
    found.append(_recording("pyannote sample", "reference", samples, finals_of(live, samples), embed,
                            reference=reference))
    singles = [(u.name, u.samples) for u in load(["spontaneous"]) if u.name != "61-70968-0000"]
    assets = human_speech_dir()
    if assets is not None:
        singles += [(name, decode_16k_mono(assets / name)) for name in ("two_cities.wav", "beckett.wav")]
    prompts = [u.samples for u in load(["allison"]) if 1.0 <= u.samples.size / SAMPLE_RATE_HZ <= 10.0]
    gap = np.zeros(int(0.7 * SAMPLE_RATE_HZ), dtype=np.float32)
    singles.append((f"allison {ALLISON_PROMPTS} prompts",
                    np.concatenate([part for prompt in prompts[:ALLISON_PROMPTS] for part in (prompt, gap)])))
    for name, audio in singles:
        found.append(_recording(name, "one voice", audio, finals_of(live, audio), embed))
    for dialogue in more_fish_dialogues():
        prints = [(voice, normalised_mean([embed(dialogue.enrollments[voice])])) for voice in dialogue.voices]
        found.append(_recording(dialogue.name, "more", dialogue.samples, finals_of(engine, dialogue.samples),
                                embed, truth=dialogue.truth, prints=prints))
    cache.write_bytes(pickle.dumps([vars(recording) for recording in found]))
    return found


@dataclass(frozen=True)
class Rule:
    name: str
    join_min: float = live_speakers.SAME_SPEAKER_MIN_SIMILARITY
    whole: bool = False
    nearest: bool = False
    margin_min: float | None = None  # join at >= this ...
    margin: float = 0.0  # ... when the closest voice beats the second by this much
    #: Names compared on the whole sentence while its voice has none (the voice still chosen on
    #: its end): more speech to name it on, for a second embedding.
    name_on_whole: bool = False

    def similarity(self, voice: _Voice, embedding: np.ndarray) -> float:
        to_mean = voice.similarity_to(embedding)
        if not self.nearest:
            return to_mean
        return max(to_mean, max(float(np.dot(embedding, other)) for other in voice.embeddings))


class RuleLabeler(LiveSpeakerLabeler):
    """The session's labeler with its choice of voice replaced by `rule`'s."""

    def __init__(self, embed: Callable, prints: list, threshold: float, rule: Rule) -> None:
        super().__init__(embed, prints, threshold)
        self._rule = rule

    def _naming_candidates(self, clip: np.ndarray, embedding: np.ndarray, voice: _Voice) -> tuple[np.ndarray, ...]:
        if not self._rule.name_on_whole or not self._voiceprints or voice.name is not None:
            return super()._naming_candidates(clip, embedding, voice)
        return (_unit(self._embed(clip)), voice.mean())  # the whole sentence first

    def _voice_of(self, embedding: np.ndarray, short: bool) -> _Voice:
        heard = sorted(((self._rule.similarity(voice, embedding), index) for index, voice in enumerate(self._voices)
                        if voice.embeddings), reverse=True)
        if heard:
            best, index = heard[0]
            second = heard[1][0] if len(heard) > 1 else -1.0
            join = best >= self._rule.join_min or (self._rule.margin_min is not None and best >= self._rule.margin_min
                                                   and best - second >= self._rule.margin)
            if short or len(self._voices) >= live_speakers.MAX_ANONYMOUS_SPEAKERS or join:
                return self._voices[index]
        voice = _Voice()
        self._voices.append(voice)
        return voice


def labelled(recording: Recording, rule: Rule, prints: list, threshold: float, baseline: bool = False) -> list:
    """The session's labels on the cached embeddings: a clip of the final's length stands for
    its audio, and the embedder answers with the final's end or whole embedding by the length
    asked for."""
    final = [0]
    end_samples = int(live_speakers.MAX_EMBED_S * SAMPLE_RATE_HZ)

    def embed(clip: np.ndarray) -> np.ndarray:
        whole = rule.whole or clip.size > end_samples
        return (recording.wholes if whole else recording.tails)[final[0]]

    labeler = (LiveSpeakerLabeler(embed, prints, threshold) if baseline
               else RuleLabeler(embed, prints, threshold, rule))
    found = []
    for final[0], ((start_s, end_s), size) in enumerate(zip(recording.spans_s, recording.sizes, strict=True)):
        found.append((start_s, end_s, labeler.label(np.zeros(size, dtype=np.float32))))
    return found


def scores(recording: Recording, rule: Rule, threshold: float, baseline: bool = False) -> tuple[float, ...]:
    """dialogue: (anonymous, enrolled, unknown named); reference: (anonymous,); one voice: (labels,)."""
    from tests.support.voices import true_voice

    if recording.kind == "reference":
        return (reference_time_score(labelled(recording, rule, [], threshold, baseline), recording.reference)[0],)
    if recording.kind == "one voice":
        return (float(len({sp.label for *_, sp in labelled(recording, rule, [], threshold, baseline)})),)
    # a dialogue, of the main sets or the wider sample
    truth, prints = recording.truth, recording.prints
    anonymous = anonymous_score(labelled(recording, rule, [], threshold, baseline), truth)
    named = labelled(recording, rule, prints, threshold, baseline)
    enrolled = sum(e - s for s, e, sp in named if sp.name == true_voice(truth, s, e)) / sum(e - s for s, e, _ in named)
    unknown = [(e - s, sp) for s, e, sp in labelled(recording, rule, prints[:-1], threshold, baseline)
               if true_voice(truth, s, e) == prints[-1][0]]
    return anonymous, enrolled, sum(d for d, sp in unknown if sp.name is not None) / sum(d for d, _ in unknown)


def rules() -> list[Rule]:
    found = [Rule("shipped (join 0.78)"), Rule("named on the whole", name_on_whole=True)]
    found += [Rule(f"join {t:.2f}", t) for t in (0.70, 0.72, 0.74, 0.75, 0.76, 0.77, 0.79, 0.80, 0.82, 0.85)]
    found += [Rule(f"whole, join {t:.2f}", t, whole=True) for t in (0.72, 0.74, 0.76, 0.78, 0.80, 0.82, 0.85)]
    found += [Rule(f"nearest, join {t:.2f}", t, nearest=True) for t in (0.78, 0.80, 0.82, 0.85, 0.88)]
    found += [Rule(f"margin {low:.2f}/{m:.2f}", margin_min=low, margin=m)
              for low in (0.60, 0.65, 0.70, 0.74) for m in (0.05, 0.10, 0.15, 0.20)]
    found += [Rule(f"whole, margin {low:.2f}/{m:.2f}", whole=True, margin_min=low, margin=m)
              for low in (0.65, 0.70, 0.74) for m in (0.10, 0.15, 0.20)]
    return found


def better_or_equal(kind: str, score: tuple[float, ...], base: tuple[float, ...]) -> tuple[bool, bool]:
    """(no worse, strictly better) on one set: higher right-speaker shares, no more unknown
    speech named, no more labels on one voice."""
    if kind == "one voice":
        return score[0] <= base[0], score[0] < base[0]
    if kind == "reference":
        return score[0] >= base[0] - 1e-9, score[0] > base[0] + 1e-9
    anonymous, enrolled, unknown = score
    no_worse = anonymous >= base[0] - 1e-9 and enrolled >= base[1] - 1e-9 and unknown <= base[2] + 1e-9
    return no_worse, no_worse and (anonymous > base[0] + 1e-9 or enrolled > base[1] + 1e-9 or unknown < base[2] - 1e-9)


def _cell(kind: str, score: tuple[float, ...]) -> str:
    if kind == "dialogue":
        return f"{score[0]:.2f}/{score[1]:.2f}/{score[2]:.0%}"
    return f"{score[0]:.2f}" if kind == "reference" else f"{score[0]:.0f}"


def main() -> None:
    threshold = SpeakerSettings().live_speaker_match_threshold
    everything = recordings()
    found = [recording for recording in everything if recording.kind != "more"]
    more = [recording for recording in everything if recording.kind == "more"]
    shipped = Rule("shipped")
    for recording in found:  # the replay of the shipped rule is the labeler itself
        assert scores(recording, shipped, threshold) == scores(recording, shipped, threshold, baseline=True)
    print(f"{len(found)} sets: dialogues as anonymous/enrolled/unknown speech named; pyannote sample as "
          f"reference time under the right label; one voice as labels made")
    for number, recording in enumerate(found):
        print(f"  s{number}: {recording.name} ({recording.kind}, {len(recording.spans_s)} finals)")
    base = [scores(recording, shipped, threshold) for recording in found]
    print(f"{'rule':28s} " + " ".join(f"{'s' + str(n):>14s}" for n in range(len(found))) + "  verdict")
    for rule in rules():
        row = [scores(recording, rule, threshold) for recording in found]
        checks = [better_or_equal(r.kind, score, b) for r, score, b in zip(found, row, base, strict=True)]
        verdict = ("BETTER" if all(ok for ok, _ in checks) and any(up for _, up in checks)
                   else "same" if all(ok for ok, _ in checks) else
                   f"worse on {','.join('s' + str(n) for n, (ok, _) in enumerate(checks) if not ok)}")
        print(f"{rule.name:28s} " + " ".join(f"{_cell(r.kind, s):>14s}" for r, s in zip(found, row, strict=True))
              + f"  {verdict}")
    print(f"the wider sample: {len(more)} more fish dialogues (bench/real_dialogues.py more_fish_dialogues): mean "
          f"anonymous / enrolled / unknown speech named, and on how many the rule is worse / better than shipped")
    more_base = [scores(recording, shipped, threshold) for recording in more]
    for rule in rules():
        row = [scores(recording, rule, threshold) for recording in more]
        checks = [better_or_equal("dialogue", score, b) for score, b in zip(row, more_base, strict=True)]
        mean = np.mean(row, axis=0)
        print(f"{rule.name:28s} {mean[0]:.2f} / {mean[1]:.2f} / {mean[2]:.1%}  "
              f"worse on {sum(not ok for ok, _ in checks)}, better on {sum(up for _, up in checks)}")
    dialogues = [recording for recording in found if recording.kind == "dialogue"]
    print(f"the shipped rule at other match thresholds for enrolled voiceprints (`live_speaker_match_threshold`, "
          f"default {threshold}): enrolled / unknown speech named, dialogues s0-s{len(dialogues) - 1}")
    for match_threshold in (0.65, 0.70, 0.75, 0.80, 0.85):
        row = [scores(recording, shipped, match_threshold) for recording in dialogues]
        print(f"{'match ' + format(match_threshold, '.2f'):28s} "
              + " ".join(f"{s[1]:.2f}/{s[2]:.0%}".rjust(14) for s in row))


if __name__ == "__main__":
    main()
