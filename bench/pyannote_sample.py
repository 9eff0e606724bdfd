"""A real two-speaker conversation with reference speaker turns: pyannote.audio's sample.

The generated dialogues of `bench/live_speakers.py` are espeak-ng voices taking clean turns;
real talk has one channel, a phone-like band, overlapping speech and short back-channel turns.
PyPI's `pyannote-audio` wheel (MIT) ships `pyannote/audio/sample/sample.wav` (30 s, 16 kHz mono,
two speakers) with `sample.rttm` (its reference turns), the one such recording with speaker
turns that the package registries hold. The wheel is pinned by version and sha256 and cached
like the held-out speech (`bench/heldout_speech.py`).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from bench.heldout_speech import CACHE_DIR, SAMPLE_RATE_HZ, Archive

PYANNOTE_AUDIO = Archive("pypi", "pyannote-audio", "4.0.7",
                         "852ea15c4d85bc34773e618267603ffca6a521669a74d33742692cc67fc700d6",
                         "pyannote_audio-4.0.7-py3-none-any.whl")
_MEMBERS = ("pyannote/audio/sample/sample.wav", "pyannote/audio/sample/sample.rttm")


@dataclass(frozen=True)
class Turn:
    """One reference speaker turn, in seconds from the recording's start."""

    start_s: float
    end_s: float
    speaker: str


def _wheel() -> Path:
    """The wheel in the cache, downloaded once and checked against its pin."""
    folder = CACHE_DIR / "archives"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PYANNOTE_AUDIO.filename
    if not path.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                        "-d", str(folder), f"{PYANNOTE_AUDIO.name}=={PYANNOTE_AUDIO.version}"], check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != PYANNOTE_AUDIO.sha256:
        path.unlink()
        raise SystemExit(f"{path.name}: sha256 {digest}, expected {PYANNOTE_AUDIO.sha256}; removed, run again")
    return path


def _extracted() -> Path:
    """The sample's two files, extracted once from the checked wheel."""
    target = CACHE_DIR / "unpacked" / "pyannote-sample"
    if not all((target / Path(member).name).exists() for member in _MEMBERS):
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(_wheel()) as wheel:
            for member in _MEMBERS:
                (target / Path(member).name).write_bytes(wheel.read(member))
    return target


def turns(rttm_text: str) -> list[Turn]:
    """The SPEAKER lines of an RTTM file (onset and duration in seconds, speaker in field 8)."""
    parsed = []
    for line in rttm_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            onset_s, duration_s = float(fields[3]), float(fields[4])
            parsed.append(Turn(onset_s, onset_s + duration_s, fields[7]))
    return parsed


def sample() -> tuple[np.ndarray, list[Turn]]:
    """The recording (float32, 16 kHz mono) and its reference turns."""
    folder = _extracted()
    samples, rate = soundfile.read(str(folder / "sample.wav"), dtype="float32")
    if rate != SAMPLE_RATE_HZ or samples.ndim != 1:
        raise SystemExit(f"sample.wav: {rate} Hz, {samples.ndim} dimensions; expected {SAMPLE_RATE_HZ} Hz mono")
    return samples, turns((folder / "sample.rttm").read_text())
