"""A generated dialogue whose speech times are known to the sample, to check subtitle timing.

Several espeak-ng voices take turns with pauses of 0.6-1.2 s between them (the 0.8 s pauses
of the report in issue 23 among them), and some turns hold two sentences with a shorter pause
inside. espeak-ng writes digital silence around its speech, so where each turn sounds is read
off its samples exactly; the pauses a cue must not run through are the silent stretches of
the assembled file. Shared by tests/test_subtitle_timing.py and bench/subtitle_timing.py.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support.speech import _cached, synthesize
from tests.support.voices import VOICES

SAMPLE_RATE_HZ = 16000
#: A sample this loud or louder is sound (about -50 dBFS); espeak-ng's silence is exactly 0.
SOUND_LEVEL = 0.003
#: Silence before the first sentence, as a recording starts.
LEAD_IN_SAMPLES = SAMPLE_RATE_HZ // 2
#: Silences this long or longer are the pauses no cue may run through.
PAUSE_S = 0.5

#: (voice, text, pause after it in seconds); consecutive lines of one voice are one turn.
PLAN: list[tuple[str, str, float]] = [
    ("alice", "The weather is nice today and I will go for a walk in the park.", 0.8),
    ("bob", "Please send the report to my office before noon on Monday.", 0.8),
    ("carol", "We need three more chairs for the meeting room upstairs.", 0.6),
    ("alice", "The train to the city leaves every morning at the station.", 1.2),
    ("bob", "My brother bought a new car last week.", 0.7),
    ("bob", "He drives it to work every day.", 0.8),
    ("carol", "Can you help me find the keys to the front door of the house?", 0.8),
    ("alice", "The children are playing football in the garden after school.", 0.9),
    ("bob", "I would like a cup of coffee with milk and no sugar, thank you.", 0.8),
    ("carol", "Our team will present the results of the project next Thursday.", 0.6),
    ("alice", "Remember to water the plants while I am away on holiday.", 1.0),
    ("bob", "The library closes at six o'clock on weekdays.", 0.8),
    ("carol", "I usually read the news in the evening.", 0.7),
    ("carol", "Then I walk the dog before going to bed.", 0.8),
    ("alice", "Numbers like seven, twelve and forty three are easy to say out loud.", 0.8),
]


@dataclass(frozen=True)
class TimedDialogue:
    """The recording and where its speech truly is, in seconds."""

    path: Path
    #: (onset_s, offset_s) of each sentence as it sounds, in order.
    sentences: list[tuple[float, float]]
    #: Silent stretches of PAUSE_S or more between the first onset and the last offset.
    pauses: list[tuple[float, float]]
    duration_s: float


def _sounding(samples: np.ndarray) -> tuple[int, int]:
    loud = np.nonzero(np.abs(samples) >= SOUND_LEVEL)[0]
    return int(loud[0]), int(loud[-1]) + 1


def _pauses(samples: np.ndarray, first: int, last: int) -> list[tuple[float, float]]:
    """Runs of silent samples of PAUSE_S or more inside `first..last`, in seconds."""
    silent = np.abs(samples[first:last]) < SOUND_LEVEL
    edges = np.diff(np.concatenate(([0], silent.astype(np.int8), [0])))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    minimum = int(PAUSE_S * SAMPLE_RATE_HZ)
    return [((first + s) / SAMPLE_RATE_HZ, (first + e) / SAMPLE_RATE_HZ)
            for s, e in zip(starts, ends, strict=True) if e - s >= minimum]


def make_timed_dialogue(directory: Path, name: str = "timed-dialogue") -> TimedDialogue:
    """The PLAN spoken into `directory/name.wav` (cached), with its true speech times."""
    import soundfile

    sources = [synthesize(text, directory / f"{name}-{index}.wav", **VOICES[voice])  # type: ignore[arg-type]
               for index, (voice, text, _pause) in enumerate(PLAN)]
    key = hashlib.sha256(repr((PLAN, [VOICES[v] for v, _, _ in PLAN], SAMPLE_RATE_HZ)).encode()).hexdigest()

    def build(out: Path) -> None:
        parts = [np.zeros(LEAD_IN_SAMPLES, dtype=np.float32)]
        for source, (_voice, _text, pause_s) in zip(sources, PLAN, strict=True):
            clip, rate = soundfile.read(str(source), dtype="float32")
            assert rate == SAMPLE_RATE_HZ
            start, end = _sounding(clip)
            # Each sentence trimmed to its sound, then the planned pause: the gaps are exact.
            parts.append(clip[start:end])
            parts.append(np.zeros(int(pause_s * SAMPLE_RATE_HZ), dtype=np.float32))
        soundfile.write(str(out), np.concatenate(parts), SAMPLE_RATE_HZ, subtype="PCM_16")

    path = _cached(directory / f"{name}.wav", key, build)
    samples, _rate = soundfile.read(str(path), dtype="float32")
    sentences = []
    position = LEAD_IN_SAMPLES
    for source, (_voice, _text, pause_s) in zip(sources, PLAN, strict=True):
        clip, _ = soundfile.read(str(source), dtype="float32")
        start, end = _sounding(clip)
        sentences.append((position / SAMPLE_RATE_HZ, (position + end - start) / SAMPLE_RATE_HZ))
        position += (end - start) + int(pause_s * SAMPLE_RATE_HZ)
    first, last = int(sentences[0][0] * SAMPLE_RATE_HZ), int(sentences[-1][1] * SAMPLE_RATE_HZ)
    return TimedDialogue(path=path, sentences=sentences, pauses=_pauses(samples, first, last),
                         duration_s=samples.size / SAMPLE_RATE_HZ)


def as_mp3(dialogue: TimedDialogue, directory: Path) -> Path:
    """The dialogue encoded as a 44.1 kHz MP3 by LAME (through PyAV), as a phone or editor would."""
    target = directory / f"{dialogue.path.stem}.mp3"
    key = hashlib.sha256(dialogue.path.read_bytes()).hexdigest()

    def build(out: Path) -> None:
        subprocess.run(["sox", "-R", str(dialogue.path), "-r", "44100", str(out.with_suffix(".44k.wav"))],
                       check=True, capture_output=True)
        _encode_mp3(out.with_suffix(".44k.wav"), out)

    return _cached(target, key, build)


def _encode_mp3(source: Path, target: Path) -> None:
    import av
    import soundfile

    samples, rate = soundfile.read(str(source), dtype="int16")
    with av.open(str(target), mode="w", format="mp3") as container:
        stream = container.add_stream("mp3", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(chunk):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@dataclass(frozen=True)
class CueTiming:
    """How a list of cues `(start_s, end_s)` fits a dialogue's speech."""

    #: Each sentence's first cue's start minus the sentence's onset (signed, seconds); a
    #: sentence that no cue covers is missing instead.
    start_errors_s: list[float]
    missing_sentences: list[int]
    #: Later cues of a sentence that start outside it (before its onset or after its offset).
    misplaced_cues: list[tuple[float, float]]
    #: Pairs of consecutive cues where the second starts before the first ends.
    overlaps: int
    #: Cues that cover more than TOLERANCE_S of a pause.
    through_pauses: list[tuple[float, float]]

    @property
    def median_abs_error_s(self) -> float:
        return float(np.median(np.abs(self.start_errors_s))) if self.start_errors_s else float("nan")

    @property
    def max_abs_error_s(self) -> float:
        return float(np.max(np.abs(self.start_errors_s))) if self.start_errors_s else float("nan")


#: The issue's goal: every cue starts within this of its speech, and covers no more of a pause.
TOLERANCE_S = 0.2


def _overlap_s(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def _distance_s(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(b[0] - a[1], a[0] - b[1], 0.0)


def score_cues(cues: list[tuple[float, float]], dialogue: TimedDialogue) -> CueTiming:
    """Each cue belongs to the sentence it overlaps most (or the nearest one)."""
    by_sentence: dict[int, list[tuple[float, float]]] = {}
    for cue in cues:
        overlaps = [_overlap_s(cue, sentence) for sentence in dialogue.sentences]
        if max(overlaps) > 0:
            owner = int(np.argmax(overlaps))
        else:
            owner = min(range(len(dialogue.sentences)), key=lambda i: _distance_s(cue, dialogue.sentences[i]))
        by_sentence.setdefault(owner, []).append(cue)
    errors, missing, misplaced = [], [], []
    for index, (onset_s, offset_s) in enumerate(dialogue.sentences):
        own = sorted(by_sentence.get(index, []))
        if not own:
            missing.append(index)
            continue
        errors.append(own[0][0] - onset_s)
        misplaced.extend(cue for cue in own[1:] if not onset_s <= cue[0] <= offset_s)
    ordered = sorted(cues)
    overlaps = sum(1 for a, b in zip(ordered, ordered[1:], strict=False) if b[0] < a[1])
    through = [cue for cue in cues if any(_overlap_s(cue, pause) > TOLERANCE_S for pause in dialogue.pauses)]
    return CueTiming(start_errors_s=errors, missing_sentences=missing, misplaced_cues=misplaced,
                     overlaps=overlaps, through_pauses=through)


@dataclass(frozen=True)
class JobOutputs:
    """A finished job's timed outputs as `(start_s, end_s)` cues by format, and what spk and
    json hold besides."""

    cues: dict[str, list[tuple[float, float]]]
    spk_lines: int
    words: int


def _vtt_seconds(timestamp: str) -> float:
    hours, minutes, seconds = timestamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def read_outputs(transcript_url: str, job: dict) -> JobOutputs:
    """Every timed output of a finished job: srt, vtt, json, verbose_json and the job's own
    segments, read with the parsers players and clients use."""
    import io
    import json

    import requests
    import srt
    import webvtt

    def fetch(fmt: str) -> str:
        response = requests.get(transcript_url, params={"format": fmt}, timeout=30)
        response.raise_for_status()
        return response.text

    stored = json.loads(fetch("json"))["segments"]
    cues = {
        "srt": [(c.start.total_seconds(), c.end.total_seconds()) for c in srt.parse(fetch("srt"))],
        "vtt": [(_vtt_seconds(c.start), _vtt_seconds(c.end))
                for c in webvtt.from_buffer(io.StringIO(fetch("vtt"))).captions],
        "json": [(s["start_s"], s["end_s"]) for s in stored],
        "verbose_json": [(s["start"], s["end"]) for s in json.loads(fetch("verbose_json"))["segments"]],
        "job result": [(s["start"], s["end"]) for s in job["result"]["segments"]],
    }
    return JobOutputs(cues=cues, spk_lines=len(fetch("spk").splitlines()),
                      words=sum(len(s["words"]) for s in stored))


def with_noise(dialogue: TimedDialogue, directory: Path, snr_db: float = 20.0) -> Path:
    """The dialogue with steady white noise `snr_db` under its speech (fixed seed): a room."""
    import soundfile

    target = directory / f"{dialogue.path.stem}-snr{snr_db:g}.wav"
    key = hashlib.sha256(dialogue.path.read_bytes() + repr(snr_db).encode()).hexdigest()

    def build(out: Path) -> None:
        samples, rate = soundfile.read(str(dialogue.path), dtype="float32")
        speech = np.concatenate([samples[int(a * rate):int(b * rate)] for a, b in dialogue.sentences])
        noise_rms = float(np.sqrt(np.mean(speech ** 2))) / 10 ** (snr_db / 20)
        noise = np.random.default_rng(23).normal(0.0, noise_rms, samples.size).astype(np.float32)
        soundfile.write(str(out), np.clip(samples + noise, -1, 1), rate, subtype="PCM_16")

    return _cached(target, key, build)
