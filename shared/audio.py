"""Audio probing and decoding, used by the API (to refuse bad uploads fast) and the worker.

libsndfile (soundfile) reads WAV, FLAC and OGG exactly and fast; FFmpeg (PyAV) reads what
it does not (MP3, AAC/M4A, Opus in WebM, ...). soxr resamples. No library exception escapes:
callers get UnsupportedMediaError (415: not audio) or UnprocessableAudioError (422: audio
we cannot use), each with a message a person can act on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile
import soxr

from shared.errors import UnprocessableAudioError, UnsupportedMediaError

logger = logging.getLogger(__name__)

TARGET_SAMPLE_RATE_HZ = 16000
#: Shorter than this holds no word: refused as unusable rather than queued.
MIN_DURATION_S = 0.1
SUPPORTED_FORMATS = "WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3, M4A/AAC, WebM"
_SOUNDFILE_BLOCK_FRAMES = 1 << 16


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate_hz: int
    channels: int
    format_name: str
    codec: str


def _not_audio(path: Path, detail: str = "") -> UnsupportedMediaError:
    suffix = f" ({detail})" if detail else ""
    return UnsupportedMediaError(
        f"the uploaded file is not audio we can read{suffix}; supported formats: {SUPPORTED_FORMATS}"
    )


def _probe_soundfile(path: Path) -> AudioInfo | None:
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError):
        return None
    if info.frames <= 0 or info.samplerate <= 0:
        return None
    return AudioInfo(info.frames / info.samplerate, int(info.samplerate), int(info.channels), info.format,
                     info.subtype)


def _packet_duration_s(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float:
    """Sum packet durations (demux only, no decoding): for containers without a duration."""
    total = 0
    for packet in container.demux(stream):
        if packet.duration:
            total += packet.duration
    return float(total * stream.time_base) if stream.time_base else 0.0


def _probe_av(path: Path) -> AudioInfo:
    try:
        container = av.open(str(path), mode="r")
    except av.error.InvalidDataError as exc:
        raise _not_audio(path) from exc
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise _not_audio(path, str(exc)) from exc
    with container:
        if not container.streams.audio:
            raise _not_audio(path, "the file has no audio stream")
        stream = container.streams.audio[0]
        format_name = container.format.name if container.format else "unknown"
        if format_name in {"image2", "png_pipe", "jpeg_pipe", "tty", "txt"}:
            raise _not_audio(path, f"it looks like {format_name}")
        duration_s = 0.0
        if stream.duration and stream.time_base:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration:
            duration_s = container.duration / av.time_base
        if duration_s <= 0:
            try:
                duration_s = _packet_duration_s(container, stream)
            except av.error.FFmpegError as exc:
                raise UnprocessableAudioError(f"the audio file is corrupt: {exc}") from exc
        sample_rate_hz = int(stream.rate or stream.codec_context.sample_rate or 0)
        channels = int(stream.codec_context.channels or 0) if hasattr(stream.codec_context, "channels") else 0
        codec = stream.codec_context.name if stream.codec_context else "unknown"
    if duration_s <= 0 or sample_rate_hz <= 0:
        raise UnprocessableAudioError("the audio file holds no audio frames (empty or corrupt)")
    return AudioInfo(duration_s, sample_rate_hz, channels, format_name, codec)


def probe(path: Path) -> AudioInfo:
    """Duration and format of an audio file, reading headers (and at most packet headers)."""
    if path.stat().st_size == 0:
        raise UnprocessableAudioError("the audio file is empty")
    info = _probe_soundfile(path) or _probe_av(path)
    if info.duration_s < MIN_DURATION_S:
        raise UnprocessableAudioError(
            f"the audio lasts {info.duration_s * 1000:.0f} ms: too short to hold speech, or the file is truncated"
        )
    return info


def _to_mono_16k(samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    if sample_rate_hz != TARGET_SAMPLE_RATE_HZ:
        mono = soxr.resample(mono, sample_rate_hz, TARGET_SAMPLE_RATE_HZ, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _decode_soundfile(path: Path) -> np.ndarray | None:
    try:
        samples, sample_rate_hz = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError):
        return None
    if samples.size == 0:
        return None
    return _to_mono_16k(samples, int(sample_rate_hz))


def _decode_av(path: Path, max_duration_s: float | None) -> np.ndarray:
    pieces: list[np.ndarray] = []
    decoded_samples = 0
    limit_samples = int(max_duration_s * TARGET_SAMPLE_RATE_HZ) if max_duration_s else None
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                raise _not_audio(path, "the file has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=TARGET_SAMPLE_RATE_HZ)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    piece = out.to_ndarray().reshape(-1)
                    pieces.append(piece)
                    decoded_samples += piece.size
                if limit_samples is not None and decoded_samples > limit_samples + TARGET_SAMPLE_RATE_HZ:
                    break
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1))
    except av.error.InvalidDataError as exc:
        if not pieces:
            raise _not_audio(path) from exc
        raise UnprocessableAudioError(f"the audio file is corrupt after {decoded_samples / 16000:.1f} s") from exc
    except av.error.FFmpegError as exc:
        raise UnprocessableAudioError(f"the audio file cannot be decoded: {exc}") from exc
    if not pieces:
        raise UnprocessableAudioError("the audio file holds no audio frames (empty or corrupt)")
    return np.ascontiguousarray(np.concatenate(pieces), dtype=np.float32)


def decode_16k_mono(path: Path, max_duration_s: float | None = None) -> np.ndarray:
    """The whole file as float32 samples in [-1, 1], 16 kHz, mono."""
    if path.stat().st_size == 0:
        raise UnprocessableAudioError("the audio file is empty")
    audio = _decode_soundfile(path)
    if audio is None:
        audio = _decode_av(path, max_duration_s)
    if audio.size == 0:
        raise UnprocessableAudioError("the audio file holds no audio frames")
    duration_s = audio.size / TARGET_SAMPLE_RATE_HZ
    if max_duration_s is not None and duration_s > max_duration_s + 1.0:
        raise UnprocessableAudioError(
            f"the audio lasts more than {max_duration_s:.0f} s, the limit of this service"
        )
    return np.clip(audio, -1.0, 1.0, out=audio)


def pcm16le_to_float32(data: bytes) -> np.ndarray:
    """Raw PCM s16le (what streaming clients send) as float32 in [-1, 1)."""
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
