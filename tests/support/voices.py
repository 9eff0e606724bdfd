"""Distinct generated voices (espeak-ng variants at set pitches and speeds) for voiceprint
tests and benchmarks: enrollment clips of one voice, and conversations of several voices
with their true turns."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from tests.support.speech import _cached, synthesize

#: Voices that differ clearly to the ear and to Resemblyzer: variant (formants), pitch and
#: speed, chosen so that no two have a GE2E cosine similarity of 0.85 or more between their
#: enrollment and their conversation speech (the same voice scores 0.976-0.99).
VOICES: dict[str, dict[str, object]] = {
    "alice": {"voice": "en-us+f3", "pitch": 75, "speed_wpm": 165},
    "bob": {"voice": "en-us+m1", "pitch": 15, "speed_wpm": 140},
    "carol": {"voice": "en-gb+f4", "pitch": 90, "speed_wpm": 175},
    "dave": {"voice": "en-us+Andy", "pitch": 45, "speed_wpm": 160},
    "erin": {"voice": "en-us+klatt", "pitch": 50, "speed_wpm": 160},
    "frank": {"voice": "en-us+max", "pitch": 40, "speed_wpm": 160},
    "grace": {"voice": "en-us+f5", "pitch": 99, "speed_wpm": 170},
    "henry": {"voice": "en-gb-scotland+m2", "pitch": 45, "speed_wpm": 150},
    "ivy": {"voice": "en-us+f2", "pitch": 60, "speed_wpm": 160},
}

#: Enrollment speech: different words from the conversations, so nothing is matched by text.
ENROLLMENT_SENTENCES = [
    "Good morning, this is a short recording of my voice for the speaker enrollment.",
    "I usually read the news in the evening and walk the dog before breakfast.",
    "Numbers like seven, twelve and forty three are easy to say out loud.",
    "The library closes at six o'clock on weekdays and at noon on Saturdays.",
]

CONVERSATION_SENTENCES = [
    "The weather is nice today and I will go for a walk in the park.",
    "Please send the report to my office before noon on Monday.",
    "We need three more chairs for the meeting room upstairs.",
    "The train to the city leaves every morning at the station.",
    "My brother bought a new car last week and he drives it to work.",
    "Can you help me find the keys to the front door of the house?",
    "The children are playing football in the garden after school.",
    "I would like a cup of coffee with milk and no sugar, thank you.",
    "Our team will present the results of the project next Thursday.",
    "Remember to water the plants while I am away on holiday.",
]


def _sox(*args: str) -> None:
    subprocess.run(["sox", *args], check=True, capture_output=True)


def enrollment_clip(name: str, path: Path, sentences: list[str] | None = None, gap_s: float = 0.3) -> Path:
    """`sentences` (default: the enrollment ones) read by voice `name`, one clip."""
    texts = sentences or ENROLLMENT_SENTENCES
    voice = VOICES[name]
    key = hashlib.sha256(repr((name, voice, texts, gap_s)).encode()).hexdigest()

    def build(out: Path) -> None:
        parts = []
        for index, text in enumerate(texts):
            source = synthesize(text, out.with_name(f"src{index}.wav"), **voice)  # type: ignore[arg-type]
            padded = out.with_name(f"pad{index}.wav")
            _sox(str(source), str(padded), "pad", "0", str(gap_s))
            parts.append(str(padded))
        _sox(*parts, str(out))

    return _cached(path, key, build)


def conversation(speakers: list[str], path: Path, turns: int = 6, gap_s: float = 0.7,
                 offset: int = 0) -> tuple[Path, list[tuple[float, float, str]]]:
    """`turns` sentences, speakers taking turns in order; the file and the true turns as
    (start_s, end_s, voice name)."""
    import soundfile

    plan = [(speakers[i % len(speakers)], CONVERSATION_SENTENCES[(i + offset) % len(CONVERSATION_SENTENCES)])
            for i in range(turns)]
    key = hashlib.sha256(repr((plan, [VOICES[s] for s in speakers], gap_s)).encode()).hexdigest()
    sources = [synthesize(text, path.with_name(f"{path.stem}-{key[:8]}-turn{i}.wav"), **VOICES[name])  # type: ignore[arg-type]
               for i, (name, text) in enumerate(plan)]
    truth: list[tuple[float, float, str]] = []
    position_s = 0.0
    for (name, _text), source in zip(plan, sources, strict=True):
        duration_s = soundfile.info(str(source)).duration
        truth.append((position_s, position_s + duration_s, name))
        position_s += duration_s + gap_s

    def build(out: Path) -> None:
        padded = []
        for index, source in enumerate(sources):
            target = out.with_name(f"pad{index}.wav")
            _sox(str(source), str(target), "pad", "0", str(gap_s))
            padded.append(str(target))
        _sox(*padded, str(out))

    return _cached(path, key, build), truth


def true_voice(truth: list[tuple[float, float, str]], start_s: float, end_s: float) -> str | None:
    """The voice whose turn overlaps [start_s, end_s] the longest."""
    overlaps: dict[str, float] = {}
    for start, end, name in truth:
        overlaps[name] = overlaps.get(name, 0.0) + max(0.0, min(end_s, end) - max(start_s, start))
    name, overlap_s = max(overlaps.items(), key=lambda item: item[1])
    return name if overlap_s > 0 else None
