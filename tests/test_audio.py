"""Probing and decoding every supported container/codec, and refusing what is not audio.

The test signal is encoded here with FFmpeg's own encoders (through PyAV), so each format is
a real file of that format, not a renamed WAV."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from shared.audio import TARGET_SAMPLE_RATE_HZ, decode_16k_mono, pcm16le_to_float32, probe
from shared.errors import UnprocessableAudioError, UnsupportedMediaError

DURATION_S = 3.0


def signal(sample_rate_hz: int, channels: int) -> np.ndarray:
    """A chirp with an envelope: its shape survives resampling and lossy codecs."""
    t = np.arange(int(DURATION_S * sample_rate_hz)) / sample_rate_hz
    mono = 0.4 * np.sin(2 * np.pi * (200 + 300 * t) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    return np.stack([mono] * channels, axis=1).astype(np.float32)


def encode(path: Path, container_format: str, codec: str, sample_rate_hz: int, channels: int) -> Path:
    samples = signal(sample_rate_hz, channels)
    if codec == "vorbis":  # FFmpeg's own vorbis encoder is experimental: libsndfile's is not
        soundfile.write(str(path), samples, sample_rate_hz, format="OGG", subtype="VORBIS")
        return path
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=sample_rate_hz)
        stream.layout = "stereo" if channels == 2 else "mono"
        sample_format = stream.codec_context.codec.audio_formats[0].name
        frame_samples = stream.codec_context.frame_size or 1024
        pts = 0
        for start in range(0, samples.shape[0], frame_samples):
            chunk = samples[start:start + frame_samples]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk.T.reshape(1, -1)), format="flt",
                                               layout=stream.layout.name)
            frame.sample_rate = sample_rate_hz
            frame.pts = pts
            frame.time_base = Fraction(1, sample_rate_hz)
            pts += chunk.shape[0]
            resampler = av.AudioResampler(format=sample_format, layout=stream.layout.name, rate=sample_rate_hz)
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


FORMATS = [
    ("wav-8k-mono.wav", "wav", "pcm_s16le", 8000, 1),
    ("wav-44k-stereo.wav", "wav", "pcm_s16le", 44100, 2),
    ("flac-48k.flac", "flac", "flac", 48000, 2),
    ("vorbis.ogg", "ogg", "vorbis", 44100, 2),
    ("opus.ogg", "ogg", "libopus", 48000, 1),
    ("mp3-44k.mp3", "mp3", "libmp3lame", 44100, 2),
    ("aac.m4a", "ipod", "aac", 44100, 2),
    ("opus.webm", "webm", "libopus", 48000, 2),
]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("formats")
    return {name: encode(directory / name, fmt, codec, rate, channels) for name, fmt, codec, rate, channels in FORMATS}


@pytest.mark.parametrize("name", [f[0] for f in FORMATS])
def test_every_format_probes_and_decodes_to_16k_mono(encoded: dict[str, Path], name: str) -> None:
    path = encoded[name]
    info = probe(path)
    assert abs(info.duration_s - DURATION_S) < 0.15, info
    audio = decode_16k_mono(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size / TARGET_SAMPLE_RATE_HZ - DURATION_S) < 0.15
    reference = signal(TARGET_SAMPLE_RATE_HZ, 1)[:, 0]
    # Lossy codecs add delay (encoder priming): compare the loudness envelopes, not samples.
    def envelope(x: np.ndarray) -> np.ndarray:
        return np.sqrt(np.convolve(x.astype(np.float64) ** 2, np.ones(1600) / 1600, mode="valid"))[::800]
    a, b = envelope(audio), envelope(reference)
    n = min(a.size, b.size)
    assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.9


@pytest.mark.parametrize("payload", [b"", b"hello, this is text\n" * 50, bytes(range(256)) * 40,
                                     b"\x89PNG\r\n\x1a\n" + bytes(4000)])
def test_non_audio_is_refused_with_415_or_422(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(payload)
    with pytest.raises((UnsupportedMediaError, UnprocessableAudioError)) as caught:
        probe(path)
    assert caught.value.http_status in (415, 422)
    with pytest.raises((UnsupportedMediaError, UnprocessableAudioError)):
        decode_16k_mono(path)


def test_random_bytes_are_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp3"
    path.write_bytes(np.random.default_rng(7).bytes(100_000))
    with pytest.raises((UnsupportedMediaError, UnprocessableAudioError)):
        probe(path)


def test_truncated_header_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    soundfile.write(buffer, signal(16000, 1), 16000, format="WAV")
    path = tmp_path / "cut.wav"
    path.write_bytes(buffer.getvalue()[:30])
    with pytest.raises((UnsupportedMediaError, UnprocessableAudioError)):
        probe(path)


def test_mp3_cut_in_half_decodes_what_is_there_or_says_why(encoded: dict[str, Path], tmp_path: Path) -> None:
    data = encoded["mp3-44k.mp3"].read_bytes()
    path = tmp_path / "half.mp3"
    path.write_bytes(data[: len(data) // 2])
    try:
        audio = decode_16k_mono(path)
    except UnprocessableAudioError:
        return
    assert 0.5 < audio.size / TARGET_SAMPLE_RATE_HZ < DURATION_S


def test_duration_limit_is_enforced_while_decoding(encoded: dict[str, Path]) -> None:
    with pytest.raises(UnprocessableAudioError, match="limit"):
        decode_16k_mono(encoded["mp3-44k.mp3"], max_duration_s=1.0)
    with pytest.raises(UnprocessableAudioError, match="limit"):
        decode_16k_mono(encoded["wav-8k-mono.wav"], max_duration_s=1.0)


def test_video_only_file_has_no_audio_stream(tmp_path: Path) -> None:
    path = tmp_path / "video.webm"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), index * 40, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with pytest.raises(UnsupportedMediaError, match="no audio stream"):
        probe(path)


def test_pcm16_conversion() -> None:
    data = np.array([0, 16384, -32768, 32767], dtype="<i2").tobytes() + b"\x01"
    assert pcm16le_to_float32(data).tolist() == [0.0, 0.5, -1.0, 32767 / 32768]
