"""Decoding a whole file to what every engine takes: float32 samples, 16 kHz, mono.

libsndfile (soundfile) decodes WAV, FLAC, OGG (Vorbis, Opus) and MP3 exactly and fast, block
by block, soxr resampling as it goes; FFmpeg (PyAV) decodes what it does not (AAC/M4A, Opus in
WebM, ...). The duration limit holds for what is decoded, whatever the header said. Imported by
the API image too (the CLI client): never torch or an engine.
"""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import soundfile
import soxr

from shared.audio.refusals import (
    DURATION_LIMIT_TOLERANCE_S,
    describe,
    length_known,
    no_audio_stream,
    refuse_empty,
    refuse_too_long,
    refuse_too_short,
    refuse_truncated_wav,
    unreadable,
)
from shared.errors import UnprocessableAudioError, UnsupportedMediaError

logger = logging.getLogger(__name__)

TARGET_SAMPLE_RATE_HZ = 16000
#: libsndfile block size: large enough to be fast, small enough that a long stereo 48 kHz
#: file is never held in memory at its source rate (4 MiB of float32 stereo per block).
_SOUNDFILE_BLOCK_FRAMES = 1 << 19


def _downmix(samples: np.ndarray) -> np.ndarray:
    """Mean of the channels: keeps a speaker who is only on one side, at half level."""
    return samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else samples.astype(np.float32, copy=False)


def _decode_soundfile(path: Path, max_duration_s: float | None) -> np.ndarray | None:
    """Block-wise decode and streaming resample with libsndfile; None if it cannot open the file."""
    try:
        handle = soundfile.SoundFile(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        logger.debug("libsndfile cannot open %s (%s); trying FFmpeg", path.name, exc)
        return None
    with handle:
        source_rate_hz = int(handle.samplerate)
        if source_rate_hz > 0 and not length_known(handle.frames, source_rate_hz):
            # libsndfile cannot read a file of unknown length to its end (its reads seek).
            logger.debug("%s does not state its length; decoding it with FFmpeg", path.name)
            return None
        if handle.frames > 0:
            refuse_too_long(handle.frames / source_rate_hz, max_duration_s)
        refuse_truncated_wav(path, str(handle.format), source_rate_hz, handle.channels, str(handle.subtype))
        resampler = (
            soxr.ResampleStream(source_rate_hz, TARGET_SAMPLE_RATE_HZ, 1, dtype="float32", quality="HQ")
            if source_rate_hz != TARGET_SAMPLE_RATE_HZ
            else None
        )
        pieces: list[np.ndarray] = []
        try:
            # Not handle.blocks(): it sizes its output from the header's frame count, and for a
            # truncated MP3 it pads the missing part with uninitialised memory (NaNs).
            read_frames = 0
            while (block := handle.read(_SOUNDFILE_BLOCK_FRAMES, dtype="float32", always_2d=True)).shape[0]:
                mono = _downmix(block)
                pieces.append(resampler.resample_chunk(mono) if resampler else mono)
                read_frames += block.shape[0]
                # A header may understate the length: the limit holds for what is decoded.
                refuse_too_long(read_frames / source_rate_hz, max_duration_s)
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            decoded_s = sum(p.size for p in pieces) / TARGET_SAMPLE_RATE_HZ
            raise UnprocessableAudioError(
                f"the {handle.format} audio is corrupt after {decoded_s:.1f} s ({exc}); "
                "export it again or upload the original recording"
            ) from exc
        if resampler:
            pieces.append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def _packed_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """A packed float frame (1, samples * channels) as mono samples, channels averaged."""
    channels = max(1, frame.layout.nb_channels)
    return _downmix(frame.to_ndarray().reshape(-1, channels))


def _decode_av(path: Path, max_duration_s: float | None) -> np.ndarray:
    """Decode with FFmpeg; its resampler converts to float mono 16 kHz as it goes."""
    pieces: list[np.ndarray] = []
    decoded_samples = 0
    limit_samples = None
    if max_duration_s is not None:
        limit_samples = int((max_duration_s + DURATION_LIMIT_TOLERANCE_S) * TARGET_SAMPLE_RATE_HZ)
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                raise no_audio_stream()
            stream = container.streams.audio[0]
            # Channels are kept and averaged here, as for libsndfile: FFmpeg's own stereo-to-mono
            # matrix adds both sides at -3 dB, which makes identical channels 1.41x louder (clipping).
            resampler = av.AudioResampler(format="flt", layout=None, rate=TARGET_SAMPLE_RATE_HZ)
            for frame in container.decode(stream):
                for converted in resampler.resample(frame):
                    piece = _packed_to_mono(converted)
                    pieces.append(piece)
                    decoded_samples += piece.size
                if limit_samples is not None and decoded_samples > limit_samples:
                    refuse_too_long(decoded_samples / TARGET_SAMPLE_RATE_HZ, max_duration_s)
            pieces.extend(_packed_to_mono(converted) for converted in resampler.resample(None))
    except (UnsupportedMediaError, UnprocessableAudioError):
        raise
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
        if not pieces:
            raise unreadable(path, describe(exc)) from exc
        raise UnprocessableAudioError(
            f"the audio is corrupt after {decoded_samples / TARGET_SAMPLE_RATE_HZ:.1f} s ({describe(exc)}); "
            "export it again or upload the original recording"
        ) from exc
    if not pieces:
        raise unreadable(path, "no audio frame could be decoded")
    return np.concatenate(pieces).astype(np.float32, copy=False)


def decode_16k_mono(path: Path, max_duration_s: float | None = None) -> np.ndarray:
    """The whole file as float32 samples in [-1, 1], 16 kHz, mono: what every engine takes.

    Raises the same 415/422 errors as probe(), and AudioTooLongError (422) when the audio
    lasts longer than `max_duration_s`: checked from the header where there is one and again
    while decoding, so a too-long file is never decoded to the end whatever its header says.
    """
    refuse_empty(path)
    audio = _decode_soundfile(path, max_duration_s)
    if audio is None:
        audio = _decode_av(path, max_duration_s)
    duration_s = audio.size / TARGET_SAMPLE_RATE_HZ
    refuse_too_short(duration_s)
    if not np.isfinite(audio).all():
        raise UnprocessableAudioError(
            "the audio holds invalid samples (NaN or infinity): export it again as 16-bit PCM or a common codec"
        )
    refuse_too_long(duration_s, max_duration_s)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    return np.clip(audio, -1.0, 1.0, out=audio)


def pcm16le_to_float32(data: bytes) -> np.ndarray:
    """Raw PCM s16le (what streaming clients send) as float32 in [-1, 1).

    A trailing odd byte (a frame split mid-sample) is dropped: the caller keeps frames whole.
    """
    usable_bytes = len(data) - len(data) % 2
    return np.frombuffer(data[:usable_bytes], dtype="<i2").astype(np.float32) / 32768.0
