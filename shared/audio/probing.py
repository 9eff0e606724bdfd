"""Probing an upload, fast: its format, and its duration measured, never just believed.

libsndfile (soundfile) reads the headers of WAV, FLAC, OGG (Vorbis, Opus) and MP3; FFmpeg
(PyAV) demuxes what it does not (AAC/M4A, Opus in WebM, ...), whose length is summed from the
packets. The API calls this to refuse bad uploads before queueing them, so it must stay cheap
and never import torch or an engine.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import av
import soundfile

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

#: How many packets probe() may decode while looking for one good frame (cheap: ~1 s of audio).
_PROBE_MAX_PACKETS = 64
#: The packet count (Opus: 20 ms each, so ~100 s of audio; ~12 ms of CPU) after which the
#: packet measure lets the rest of the API process run: measuring a 4 h file takes about 2 s of
#: CPU, which must not stall every other request of a gevent process. The pause is not 0:
#: gevent's sleep(0) runs other ready greenlets but polls no socket and fires no timer.
_PACKETS_PER_YIELD = 5_000
_YIELD_S = 0.001


@dataclass(frozen=True)
class AudioInfo:
    """What the API needs to accept an upload (duration limit) and to record it on the job."""

    duration_s: float
    sample_rate_hz: int
    channels: int
    format_name: str
    codec: str



def _probe_soundfile(path: Path) -> AudioInfo | None:
    """Header-only probe with libsndfile; None when libsndfile does not know the format, or
    the header does not know the length (FFmpeg then measures it)."""
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        logger.debug("libsndfile cannot read %s (%s); trying FFmpeg", path.name, exc)
        return None
    if info.samplerate <= 0 or not length_known(info.frames, info.samplerate):
        return None
    if info.frames <= 0:
        raise UnprocessableAudioError(
            f"the {info.format} file holds no audio samples (only a header): record or export it again"
        )
    refuse_truncated_wav(path, str(info.format), info.samplerate, info.channels, str(info.subtype))
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
                    refuse_too_long(float(max(total_ticks, last_end_ticks) * stream.time_base), max_duration_s)
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
                raise no_audio_stream()
            stream = container.streams.audio[0]
            if not _first_frame_decodes(container, stream):
                raise unreadable(path, "no audio frame could be decoded")
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
        raise unreadable(path, describe(exc)) from exc
    if sample_rate_hz <= 0:
        raise unreadable(path, "the audio stream has no sample rate")
    return AudioInfo(duration_s, sample_rate_hz, channels, format_name, codec)



def probe(path: Path, max_duration_s: float | None = None) -> AudioInfo:
    """Duration and format of an audio file, fast: headers, packet headers, one decoded frame.

    Raises UnsupportedMediaError (415) for bytes that are not audio we know, and
    UnprocessableAudioError (422) for audio that is empty, truncated, corrupt or too short.
    Files FFmpeg reads (WebM, MP4/M4A, ...) are measured from their packets, never from the
    length their header states, stopping with a 422 once they pass `max_duration_s` (the
    caller still checks the result). libsndfile's formats state their length in a way its
    decoder honours; whatever a file claims, the worker stops decoding at the limit.
    """
    refuse_empty(path)
    info = _probe_soundfile(path) or _probe_av(path, max_duration_s)
    refuse_too_short(info.duration_s)
    logger.debug("probed %s: %s", path.name, info)
    return info
