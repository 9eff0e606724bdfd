"""Audio probing and decoding, used by the API (to refuse bad uploads fast) and the worker.

libsndfile (soundfile) reads WAV, FLAC, OGG (Vorbis, Opus) and MP3 exactly and fast; FFmpeg
(PyAV) reads what it does not (AAC/M4A, Opus in WebM, ...). soxr resamples. This module is
imported by the API image, so it must never import torch or an engine.

No library exception escapes: callers get UnsupportedMediaError (415: these bytes are not
audio we know) or UnprocessableAudioError (422: audio, but unusable: truncated, corrupt,
empty, too short or too long), each with a message a person can act on. The line between
the two is drawn by the file's magic number: bytes that start like a WAV/FLAC/OGG/MP3/MP4/
WebM file but that no decoder can read are a broken upload (422), anything else is 415.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile
import soxr

from shared.errors import AudioTooLongError, UnprocessableAudioError, UnsupportedMediaError
from shared.wav_truncation import truncation_message

logger = logging.getLogger(__name__)

TARGET_SAMPLE_RATE_HZ = 16000
#: Shorter than this holds no word: refused as unusable rather than queued.
MIN_DURATION_S = 0.1
#: Lossy codecs add encoder priming/padding (AAC: 2048 samples), so a decoded file may be a
#: little longer than its probed duration; a file the API accepted must not fail in the worker.
DURATION_LIMIT_TOLERANCE_S = 1.0
SUPPORTED_FORMATS = "WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3, M4A/AAC, WebM"
#: libsndfile block size: large enough to be fast, small enough that a long stereo 48 kHz
#: file is never held in memory at its source rate (4 MiB of float32 stereo per block).
_SOUNDFILE_BLOCK_FRAMES = 1 << 19
#: How many packets probe() may decode while looking for one good frame (cheap: ~1 s of audio).
_PROBE_MAX_PACKETS = 64
_HEADER_SNIFF_BYTES = 16
#: A header claiming more than this does not know the length: libsndfile reports a FLAC whose
#: STREAMINFO says "total samples unknown" (streaming encoders write it so) as 2**63-1 frames.
#: Such files are measured from their packets instead, never reported with that number.
_MAX_PLAUSIBLE_DURATION_S = 366 * 24 * 3600.0
#: The packet count (Opus: 20 ms each, so ~100 s of audio; ~12 ms of CPU) after which the
#: packet measure lets the rest of the API process run: measuring a 4 h file takes about 2 s of
#: CPU, which must not stall every other request of a gevent process. The pause is not 0:
#: gevent's sleep(0) runs other ready greenlets but polls no socket and fires no timer.
_PACKETS_PER_YIELD = 5_000
_YIELD_S = 0.001

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


@dataclass(frozen=True)
class AudioInfo:
    """What the API needs to accept an upload (duration limit) and to record it on the job."""

    duration_s: float
    sample_rate_hz: int
    channels: int
    format_name: str
    codec: str


def _sniff_audio_format(path: Path) -> str | None:
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


def _unreadable(path: Path, detail: str) -> UnsupportedMediaError | UnprocessableAudioError:
    """The error for bytes no decoder could read: 422 if they look like audio, else 415."""
    kind = _sniff_audio_format(path)
    logger.info("unreadable audio file %s (looks like: %s): %s", path.name, kind, detail)
    if kind is not None:
        return UnprocessableAudioError(
            f"the file looks like {kind} audio but it is truncated or corrupt ({detail}); "
            "export it again or upload the original recording"
        )
    return UnsupportedMediaError(f"the uploaded file is not an audio file we can read (supported: {SUPPORTED_FORMATS})")


def _no_audio_stream() -> UnsupportedMediaError:
    return UnsupportedMediaError(
        "the file holds no audio stream (is it a video without sound, or an image?); "
        f"upload audio (supported: {SUPPORTED_FORMATS})"
    )


def _refuse_empty(path: Path) -> None:
    """An empty file is a failed upload, not an unknown format: 422 (the API says 400 first)."""
    if path.stat().st_size == 0:
        raise UnprocessableAudioError("the audio file is empty (0 bytes): the upload may have failed, send it again")


def _refuse_too_short(duration_s: float) -> None:
    """Below MIN_DURATION_S there is no word to find; usually a truncated or header-only file."""
    if duration_s < MIN_DURATION_S:
        raise UnprocessableAudioError(
            f"the audio lasts {duration_s * 1000:.0f} ms: too short to hold speech, or the file is truncated"
        )


def _refuse_too_long(duration_s: float, max_duration_s: float | None) -> None:
    """The service's duration limit, with DURATION_LIMIT_TOLERANCE_S for codec padding.

    `duration_s` is as far as the audio was measured or decoded when it passed the limit; the
    error carries it, so the worker can record (and charge) what it actually decoded."""
    if max_duration_s is not None and duration_s > max_duration_s + DURATION_LIMIT_TOLERANCE_S:
        raise AudioTooLongError(
            f"the audio lasts more than {max_duration_s:.0f} s, the limit of this service: split it and send the parts",
            measured_s=duration_s, limit_s=max_duration_s,
        )


# --------------------------------------------------------------------------- probe


def _length_known(frames: int, sample_rate_hz: float) -> bool:
    return frames / sample_rate_hz <= _MAX_PLAUSIBLE_DURATION_S


def _bytes_per_sample(subtype: str) -> int:
    """PCM_16 -> 2, FLOAT -> 4, ...; 2 where the subtype does not say (only the message's seconds use it)."""
    sizes = {"PCM_U8": 1, "PCM_S8": 1, "ULAW": 1, "ALAW": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4,
             "DOUBLE": 8}
    return sizes.get(subtype, 2)


def _refuse_truncated_wav(path: Path, format_name: str, sample_rate_hz: float, channels: int, subtype: str) -> None:
    """A WAV that holds less than its header announces (libsndfile reads it without a word)."""
    if format_name == "WAV" and (cut := truncation_message(path, sample_rate_hz * channels
                                                           * _bytes_per_sample(subtype))):
        raise UnprocessableAudioError(cut)


def _probe_soundfile(path: Path) -> AudioInfo | None:
    """Header-only probe with libsndfile; None when libsndfile does not know the format, or
    the header does not know the length (FFmpeg then measures it)."""
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        logger.debug("libsndfile cannot read %s (%s); trying FFmpeg", path.name, exc)
        return None
    if info.samplerate <= 0 or not _length_known(info.frames, info.samplerate):
        return None
    if info.frames <= 0:
        raise UnprocessableAudioError(
            f"the {info.format} file holds no audio samples (only a header): record or export it again"
        )
    _refuse_truncated_wav(path, str(info.format), info.samplerate, info.channels, str(info.subtype))
    return AudioInfo(
        duration_s=info.frames / info.samplerate,
        sample_rate_hz=int(info.samplerate),
        channels=int(info.channels),
        format_name=str(info.format),
        codec=str(info.subtype),
    )


def _header_duration_s(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float:
    """Duration from the stream, else the container header; 0 when neither has one."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _packet_duration_s(path: Path, max_duration_s: float | None = None) -> float:
    """Sum of packet durations (demux only, no decoding: milliseconds for minutes of audio).

    The length FFmpeg's decoder will produce, whatever the container's header claims: a
    Matroska/WebM Segment Duration (or an MP4 header) is written by whoever made the file, and
    one that says 1 s over 100 s of Opus would otherwise be admitted, and charged, as 1 s.
    Browser recorders (MediaRecorder) and streaming encoders write no duration at all. It stops
    (422) as soon as the sum passes `max_duration_s`, so a huge file is not read to its end. A
    fresh container is opened rather than seeking back, which some demuxers cannot do.
    """
    with av.open(str(path), mode="r") as container:
        stream = container.streams.audio[0]
        if not stream.time_base:
            return 0.0
        limit_ticks = None
        if max_duration_s is not None:
            limit_ticks = (max_duration_s + DURATION_LIMIT_TOLERANCE_S) / stream.time_base
        total_ticks = 0
        last_end_ticks = 0
        for index, packet in enumerate(container.demux(stream), start=1):
            if index % _PACKETS_PER_YIELD == 0:
                time.sleep(_YIELD_S)  # under gevent (the API), the other requests' turn
            if packet.duration:
                total_ticks += packet.duration
                if packet.pts is not None:
                    last_end_ticks = max(last_end_ticks, packet.pts + packet.duration)
                if limit_ticks is not None and max(total_ticks, last_end_ticks) > limit_ticks:
                    _refuse_too_long(float(max(total_ticks, last_end_ticks) * stream.time_base), max_duration_s)
        ticks = total_ticks or last_end_ticks
        return float(ticks * stream.time_base)


def _first_frame_decodes(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> bool:
    """Decode at most a few packets: random bytes that FFmpeg half-recognises fail here."""
    for index, packet in enumerate(container.demux(stream)):
        if index >= _PROBE_MAX_PACKETS:
            return False
        try:
            if packet.decode():
                return True
        except av.error.InvalidDataError:
            continue
    return False


def _probe_av(path: Path, max_duration_s: float | None = None) -> AudioInfo:
    """Container probe with FFmpeg: demux, one decoded frame as proof, never a full decode."""
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                raise _no_audio_stream()
            stream = container.streams.audio[0]
            if not _first_frame_decodes(container, stream):
                raise _unreadable(path, "no audio frame could be decoded")
            header_duration_s = _header_duration_s(container, stream)
            context = stream.codec_context
            sample_rate_hz = int(stream.rate or context.sample_rate or 0)
            channels = int(context.channels or context.layout.nb_channels or 0)
            format_name = container.format.name if container.format else "unknown"
            codec = context.name or "unknown"
        # Measured, not believed: the header only stands in where the packets carry no durations.
        duration_s = _packet_duration_s(path, max_duration_s) or header_duration_s
        if duration_s > header_duration_s + DURATION_LIMIT_TOLERANCE_S and header_duration_s > 0:
            logger.info("%s states %.1f s but its packets last %.1f s; measured wins", path.name,
                        header_duration_s, duration_s)
    except (UnsupportedMediaError, UnprocessableAudioError):
        raise
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise _unreadable(path, _describe(exc)) from exc
    if sample_rate_hz <= 0:
        raise _unreadable(path, "the audio stream has no sample rate")
    return AudioInfo(duration_s, sample_rate_hz, channels, format_name, codec)


def _describe(exc: BaseException) -> str:
    """An FFmpeg error without its errno and temp file path, which mean nothing to a client."""
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    return type(exc).__name__


def probe(path: Path, max_duration_s: float | None = None) -> AudioInfo:
    """Duration and format of an audio file, fast: headers, packet headers, one decoded frame.

    Raises UnsupportedMediaError (415) for bytes that are not audio we know, and
    UnprocessableAudioError (422) for audio that is empty, truncated, corrupt or too short.
    Files FFmpeg reads (WebM, MP4/M4A, ...) are measured from their packets, never from the
    length their header states, stopping with a 422 once they pass `max_duration_s` (the
    caller still checks the result). libsndfile's formats state their length in a way its
    decoder honours; whatever a file claims, the worker stops decoding at the limit.
    """
    _refuse_empty(path)
    info = _probe_soundfile(path) or _probe_av(path, max_duration_s)
    _refuse_too_short(info.duration_s)
    logger.debug("probed %s: %s", path.name, info)
    return info


# --------------------------------------------------------------------------- decode


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
        if source_rate_hz > 0 and not _length_known(handle.frames, source_rate_hz):
            # libsndfile cannot read a file of unknown length to its end (its reads seek).
            logger.debug("%s does not state its length; decoding it with FFmpeg", path.name)
            return None
        if handle.frames > 0:
            _refuse_too_long(handle.frames / source_rate_hz, max_duration_s)
        _refuse_truncated_wav(path, str(handle.format), source_rate_hz, handle.channels, str(handle.subtype))
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
                _refuse_too_long(read_frames / source_rate_hz, max_duration_s)
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
                raise _no_audio_stream()
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
                    _refuse_too_long(decoded_samples / TARGET_SAMPLE_RATE_HZ, max_duration_s)
            pieces.extend(_packed_to_mono(converted) for converted in resampler.resample(None))
    except (UnsupportedMediaError, UnprocessableAudioError):
        raise
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
        if not pieces:
            raise _unreadable(path, _describe(exc)) from exc
        raise UnprocessableAudioError(
            f"the audio is corrupt after {decoded_samples / TARGET_SAMPLE_RATE_HZ:.1f} s ({_describe(exc)}); "
            "export it again or upload the original recording"
        ) from exc
    if not pieces:
        raise _unreadable(path, "no audio frame could be decoded")
    return np.concatenate(pieces).astype(np.float32, copy=False)


def decode_16k_mono(path: Path, max_duration_s: float | None = None) -> np.ndarray:
    """The whole file as float32 samples in [-1, 1], 16 kHz, mono: what every engine takes.

    Raises the same 415/422 errors as probe(), and AudioTooLongError (422) when the audio
    lasts longer than `max_duration_s`: checked from the header where there is one and again
    while decoding, so a too-long file is never decoded to the end whatever its header says.
    """
    _refuse_empty(path)
    audio = _decode_soundfile(path, max_duration_s)
    if audio is None:
        audio = _decode_av(path, max_duration_s)
    duration_s = audio.size / TARGET_SAMPLE_RATE_HZ
    _refuse_too_short(duration_s)
    if not np.isfinite(audio).all():
        raise UnprocessableAudioError(
            "the audio holds invalid samples (NaN or infinity): export it again as 16-bit PCM or a common codec"
        )
    _refuse_too_long(duration_s, max_duration_s)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    return np.clip(audio, -1.0, 1.0, out=audio)


def pcm16le_to_float32(data: bytes) -> np.ndarray:
    """Raw PCM s16le (what streaming clients send) as float32 in [-1, 1).

    A trailing odd byte (a frame split mid-sample) is dropped: the caller keeps frames whole.
    """
    usable_bytes = len(data) - len(data) % 2
    return np.frombuffer(data[:usable_bytes], dtype="<i2").astype(np.float32) / 32768.0
