"""Why an audio file is refused, as errors a person can act on (shared by probing and decoding).

No library exception escapes the audio package: callers get UnsupportedMediaError (415: these
bytes are not audio we know) or UnprocessableAudioError (422: audio, but unusable: truncated,
corrupt, empty, too short or too long). The line between the two is drawn by the file's magic
number: bytes that start like a WAV/FLAC/OGG/MP3/MP4/WebM file but that no decoder can read are
a broken upload (422), anything else is 415.
"""

from __future__ import annotations

import logging
from pathlib import Path

import av

from shared.errors import AudioTooLongError, UnprocessableAudioError, UnsupportedMediaError
from shared.wav_truncation import truncation_message

logger = logging.getLogger(__name__)

#: Shorter than this holds no word: refused as unusable rather than queued.
MIN_DURATION_S = 0.1
#: Lossy codecs add encoder priming/padding (AAC: 2048 samples), so a decoded file may be a
#: little longer than its probed duration; a file the API accepted must not fail in the worker.
DURATION_LIMIT_TOLERANCE_S = 1.0
SUPPORTED_FORMATS = "WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3, M4A/AAC, WebM"
_HEADER_SNIFF_BYTES = 16
#: A header claiming more than this does not know the length: libsndfile reports a FLAC whose
#: STREAMINFO says "total samples unknown" (streaming encoders write it so) as 2**63-1 frames.
#: Such files are measured from their packets instead, never reported with that number.
_MAX_PLAUSIBLE_DURATION_S = 366 * 24 * 3600.0

#: (offset, magic bytes, format name): files that claim to be audio by their first bytes.
_AUDIO_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"RIFF", "WAV"),
    (0, b"RIFX", "WAV"),
    (0, b"RF64", "WAV"),
    (0, b"fLaC", "FLAC"),
    (0, b"OggS", "OGG"),
    (0, b"ID3", "MP3"),
    (4, b"ftyp", "MP4/M4A"),
    (0, b"\x1a\x45\xdf\xa3", "WebM/Matroska"),
    (0, b"FORM", "AIFF"),
    (0, b"caff", "CAF"),
)


def sniff_audio_format(path: Path) -> str | None:
    """The audio format the file's first bytes claim, if any (decides 422 over 415)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEADER_SNIFF_BYTES)
    except OSError:
        return None
    for offset, magic, name in _AUDIO_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def unreadable(path: Path, detail: str) -> UnsupportedMediaError | UnprocessableAudioError:
    """The error for bytes no decoder could read: 422 if they look like audio, else 415."""
    kind = sniff_audio_format(path)
    logger.info("unreadable audio file %s (looks like: %s): %s", path.name, kind, detail)
    if kind is not None:
        return UnprocessableAudioError(
            f"the file looks like {kind} audio but it is truncated or corrupt ({detail}); "
            "export it again or upload the original recording"
        )
    return UnsupportedMediaError(f"the uploaded file is not an audio file we can read (supported: {SUPPORTED_FORMATS})")


def no_audio_stream() -> UnsupportedMediaError:
    return UnsupportedMediaError(
        "the file holds no audio stream (is it a video without sound, or an image?); "
        f"upload audio (supported: {SUPPORTED_FORMATS})"
    )


def refuse_empty(path: Path) -> None:
    """An empty file is a failed upload, not an unknown format: 422 (the API says 400 first)."""
    if path.stat().st_size == 0:
        raise UnprocessableAudioError("the audio file is empty (0 bytes): the upload may have failed, send it again")


def refuse_too_short(duration_s: float) -> None:
    """Below MIN_DURATION_S there is no word to find; usually a truncated or header-only file."""
    if duration_s < MIN_DURATION_S:
        raise UnprocessableAudioError(
            f"the audio lasts {duration_s * 1000:.0f} ms: too short to hold speech, or the file is truncated"
        )


def refuse_too_long(duration_s: float, max_duration_s: float | None) -> None:
    """The service's duration limit, with DURATION_LIMIT_TOLERANCE_S for codec padding.

    `duration_s` is as far as the audio was measured or decoded when it passed the limit; the
    error carries it, so the worker can record (and charge) what it actually decoded."""
    if max_duration_s is not None and duration_s > max_duration_s + DURATION_LIMIT_TOLERANCE_S:
        raise AudioTooLongError(
            f"the audio lasts more than {max_duration_s:.0f} s, the limit of this service: split it and send the parts",
            measured_s=duration_s, limit_s=max_duration_s,
        )


def length_known(frames: int, sample_rate_hz: float) -> bool:
    return frames / sample_rate_hz <= _MAX_PLAUSIBLE_DURATION_S


def _bytes_per_sample(subtype: str) -> int:
    """PCM_16 -> 2, FLOAT -> 4, ...; 2 where the subtype does not say (only the message's seconds use it)."""
    sizes = {"PCM_U8": 1, "PCM_S8": 1, "ULAW": 1, "ALAW": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4,
             "DOUBLE": 8}
    return sizes.get(subtype, 2)


def refuse_truncated_wav(path: Path, format_name: str, sample_rate_hz: float, channels: int, subtype: str) -> None:
    """A WAV that holds less than its header announces (libsndfile reads it without a word)."""
    if format_name == "WAV" and (cut := truncation_message(path, sample_rate_hz * channels
                                                           * _bytes_per_sample(subtype))):
        raise UnprocessableAudioError(cut)



def describe(exc: BaseException) -> str:
    """An FFmpeg error without its errno and temp file path, which mean nothing to a client."""
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    return type(exc).__name__
