"""Probing and decoding every supported container/codec, and refusing what is not audio.

The test signals are encoded here with FFmpeg's own encoders (through PyAV), so each format
is a real file of that format, not a renamed WAV. Error statuses checked here are the
contract the API relies on:

- 415 (UnsupportedMediaError): bytes no decoder knows (random bytes, text, a PNG, a video
  without sound).
- 422 (UnprocessableAudioError): audio we cannot use: an empty file (chosen over 415: there
  is no format to be wrong about, the upload itself failed), a header-only or truncated WAV
  (even cut to 30 bytes: its RIFF magic says it was audio), corrupt data, too short, too long.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import soxr

from shared.audio import TARGET_SAMPLE_RATE_HZ, AudioInfo, decode_16k_mono, pcm16le_to_float32, probe
from shared.errors import OddAsrError, UnprocessableAudioError, UnsupportedMediaError
from shared.wav_truncation import wav_truncation

DURATION_S = 3.0
TOLERANCE_S = 0.1
ROOT = Path(__file__).resolve().parents[1]


def chirp(sample_rate_hz: int, channels: int, duration_s: float = DURATION_S) -> np.ndarray:
    """A chirp with a slow envelope, shape (frames, channels): its shape survives lossy codecs."""
    t_s = np.arange(int(duration_s * sample_rate_hz)) / sample_rate_hz
    mono = 0.4 * np.sin(2 * np.pi * (200 + 300 * t_s) * t_s) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t_s))
    return np.stack([mono] * channels, axis=1).astype(np.float32)


def encode(
    path: Path,
    container_format: str,
    codec: str,
    samples: np.ndarray,
    sample_rate_hz: int,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode float samples (frames, channels) with FFmpeg's encoder `codec` into `path`."""
    channels = samples.shape[1]
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), mode="w", format=container_format, options=container_options or {}) as container:
        # FFmpeg's native Vorbis encoder is flagged experimental; it still makes valid files.
        stream = container.add_stream(codec, rate=sample_rate_hz, options={"strict": "experimental"})
        stream.layout = layout
        sample_format = stream.codec_context.codec.audio_formats[0].name
        frame_samples = stream.codec_context.frame_size or 1024
        resampler = av.AudioResampler(format=sample_format, layout=layout, rate=sample_rate_hz)
        for start in range(0, samples.shape[0], frame_samples):
            chunk = np.ascontiguousarray(samples[start : start + frame_samples].T)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = sample_rate_hz
            frame.pts = start
            frame.time_base = Fraction(1, sample_rate_hz)
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def envelope(x: np.ndarray) -> np.ndarray:
    """Loudness every 50 ms: lossy codecs shift and reshape samples, not this."""
    window = TARGET_SAMPLE_RATE_HZ // 10
    return np.sqrt(np.convolve(x.astype(np.float64) ** 2, np.ones(window) / window, mode="valid"))[:: window // 2]


def envelope_correlation(a: np.ndarray, b: np.ndarray) -> float:
    ea, eb = envelope(a), envelope(b)
    n = min(ea.size, eb.size)
    return float(np.corrcoef(ea[:n], eb[:n])[0, 1])


# name, container, codec, sample rate, channels, lossless
FORMATS = [
    ("wav-8k-mono.wav", "wav", "pcm_s16le", 8000, 1, True),
    ("wav-44k-stereo.wav", "wav", "pcm_s16le", 44100, 2, True),
    ("wav-48k-mono.wav", "wav", "pcm_s16le", 48000, 1, True),
    ("wav-16k-mono.wav", "wav", "pcm_s16le", 16000, 1, True),
    ("flac-48k.flac", "flac", "flac", 48000, 2, True),
    ("vorbis.ogg", "ogg", "vorbis", 44100, 2, False),
    ("opus.ogg", "ogg", "libopus", 48000, 1, False),
    ("mp3-44k.mp3", "mp3", "libmp3lame", 44100, 2, False),
    ("aac.m4a", "ipod", "aac", 44100, 2, False),
    ("opus.webm", "webm", "libopus", 48000, 2, False),
]
LOSSLESS = {name for name, *_, lossless in FORMATS if lossless}


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("formats")
    return {
        name: encode(directory / name, fmt, codec, chirp(rate_hz, channels), rate_hz)
        for name, fmt, codec, rate_hz, channels, _ in FORMATS
    }


@pytest.mark.parametrize("name", [f[0] for f in FORMATS])
def test_every_format_probes_and_decodes_to_16k_mono(encoded: dict[str, Path], name: str) -> None:
    path = encoded[name]
    info = probe(path)
    assert isinstance(info, AudioInfo)
    assert abs(info.duration_s - DURATION_S) < TOLERANCE_S, info
    assert info.sample_rate_hz > 0 and info.channels in (1, 2) and info.format_name and info.codec
    audio = decode_16k_mono(path)
    assert audio.dtype == np.float32 and audio.ndim == 1 and audio.flags.c_contiguous
    assert abs(audio.size / TARGET_SAMPLE_RATE_HZ - DURATION_S) < TOLERANCE_S
    assert np.abs(audio).max() <= 1.0
    reference = chirp(TARGET_SAMPLE_RATE_HZ, 1)[:, 0]
    assert envelope_correlation(audio, reference) > 0.9
    rms_ratio = float(np.sqrt(np.mean(audio**2)) / np.sqrt(np.mean(reference**2)))
    assert 0.8 < rms_ratio < 1.2, rms_ratio
    if name in LOSSLESS:  # sample-exact formats: the waveform itself must match
        n = min(audio.size, reference.size)
        assert np.corrcoef(audio[:n], reference[:n])[0, 1] > 0.99


def test_webm_without_duration_is_measured_from_packets(tmp_path: Path) -> None:
    """Browser recorders write WebM with no duration; 'live' makes FFmpeg do the same."""
    path = encode(tmp_path / "recorder.webm", "webm", "libopus", chirp(48000, 1), 48000, {"live": "1"})
    with av.open(str(path)) as container:
        assert container.duration is None and container.streams.audio[0].duration is None
    assert abs(probe(path).duration_s - DURATION_S) < TOLERANCE_S
    assert abs(decode_16k_mono(path).size / TARGET_SAMPLE_RATE_HZ - DURATION_S) < TOLERANCE_S


def speak(text: str, path: Path) -> Path:
    """espeak-ng speech as a WAV (22.05 kHz mono): real speech, deterministic, offline."""
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True, timeout=30)
    return path


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
@pytest.mark.parametrize(
    ("name", "container_format", "codec"), [("speech.mp3", "mp3", "libmp3lame"), ("speech.webm", "webm", "libopus")]
)
def test_speech_survives_lossy_encoding(tmp_path: Path, name: str, container_format: str, codec: str) -> None:
    original, rate_hz = soundfile.read(
        str(speak("The quick brown fox jumps over the lazy dog.", tmp_path / "s.wav")), dtype="float32", always_2d=True
    )
    encode_rate_hz = 48000 if codec == "libopus" else rate_hz
    source = soxr.resample(original, rate_hz, encode_rate_hz) if encode_rate_hz != rate_hz else original
    path = encode(tmp_path / name, container_format, codec, source.astype(np.float32), encode_rate_hz)
    reference = soxr.resample(original[:, 0], rate_hz, TARGET_SAMPLE_RATE_HZ)
    audio = decode_16k_mono(path)
    assert abs(audio.size - reference.size) / TARGET_SAMPLE_RATE_HZ < TOLERANCE_S
    assert abs(probe(path).duration_s - reference.size / TARGET_SAMPLE_RATE_HZ) < TOLERANCE_S
    assert envelope_correlation(audio, reference) > 0.9


def wav_bytes(samples: np.ndarray, sample_rate_hz: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate_hz, format="WAV", subtype=subtype)
    return buffer.getvalue()


def assert_refused(path: Path, error: type[OddAsrError], match: str | None = None) -> None:
    """Both entry points agree on the status: the API probes, the worker decodes."""
    with pytest.raises(error, match=match):
        probe(path)
    with pytest.raises(error, match=match):
        decode_16k_mono(path)


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("noise.mp3", np.random.default_rng(7).bytes(100_000)),
        ("noise.wav", bytes(range(256)) * 40),
        ("notes.wav", b"hello, this is text\n" * 50),
        ("one-byte.ogg", b"a"),
        ("doc.m4a", b"%PDF-1.4\n" + bytes(3000)),
    ],
)
def test_bytes_that_are_not_audio_are_415(tmp_path: Path, name: str, payload: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(payload)
    assert_refused(path, UnsupportedMediaError, "not an audio file we can read")


def test_empty_file_is_422(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    assert_refused(path, UnprocessableAudioError, "empty")


@pytest.mark.parametrize("cut_bytes", [30, 44, 100])
def test_truncated_wav_header_is_422(tmp_path: Path, cut_bytes: int) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(wav_bytes(chirp(16000, 1), 16000)[:cut_bytes])
    assert_refused(path, UnprocessableAudioError)


def test_a_wav_cut_after_its_header_says_how_much_is_missing(tmp_path: Path) -> None:
    """libsndfile reads what is there without a word: a recording cut off (its first 30 KB of
    12 s) was transcribed as if whole, though truncated files are documented as 422."""
    path = tmp_path / "cut.wav"
    path.write_bytes(wav_bytes(chirp(16000, 1, 12.0), 16000)[:30_000])
    assert_refused(path, UnprocessableAudioError, "truncated: its header announces 12.0 s of audio but it holds 0.9 s")


def test_a_wav_whose_header_does_not_know_its_length_is_read(tmp_path: Path) -> None:
    """Streaming recorders write 0xFFFFFFFF (or 0) while the length is unknown: not a truncation."""
    data = bytearray(wav_bytes(chirp(16000, 1, 2.0), 16000))
    data_chunk = data.index(b"data")
    data[data_chunk + 4:data_chunk + 8] = b"\xff\xff\xff\xff"
    path = tmp_path / "streamed.wav"
    path.write_bytes(bytes(data))
    assert wav_truncation(path) is None


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("broken.ogg", b"OggS\x00\x02" + np.random.default_rng(1).bytes(5000)),
        ("broken.m4a", b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42" + np.random.default_rng(2).bytes(5000)),
        ("broken.webm", b"\x1a\x45\xdf\xa3" + np.random.default_rng(3).bytes(5000)),
    ],
)
def test_audio_magic_with_garbage_behind_it_is_422(tmp_path: Path, name: str, payload: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(payload)
    assert_refused(path, UnprocessableAudioError, "truncated or corrupt")


@pytest.mark.parametrize("name", ["mp3-44k.mp3", "aac.m4a", "opus.webm", "flac-48k.flac", "vorbis.ogg"])
@pytest.mark.parametrize("kept_fraction", [0.02, 0.5, 0.9])
def test_cut_files_decode_what_is_there_or_say_422(
    encoded: dict[str, Path], tmp_path: Path, name: str, kept_fraction: float
) -> None:
    data = encoded[name].read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: int(len(data) * kept_fraction)])
    for entry_point in (probe, decode_16k_mono):
        try:
            entry_point(path)
        except UnprocessableAudioError as exc:
            # Never 415 (UnsupportedMediaError propagates and fails the test): the format is
            # recognised, the file is only cut, and the message says so.
            assert re.search(r"truncated|corrupt", exc.message), exc.message
    try:
        audio = decode_16k_mono(path)
    except UnprocessableAudioError:
        return
    assert np.isfinite(audio).all()
    assert audio.size / TARGET_SAMPLE_RATE_HZ <= DURATION_S + TOLERANCE_S


def test_mp3_cut_in_half_decodes_the_first_half(encoded: dict[str, Path], tmp_path: Path) -> None:
    data = encoded["mp3-44k.mp3"].read_bytes()
    path = tmp_path / "half.mp3"
    path.write_bytes(data[: len(data) // 2])
    audio = decode_16k_mono(path)
    assert np.isfinite(audio).all()  # libsndfile's block reader padded this with NaNs once
    assert abs(audio.size / TARGET_SAMPLE_RATE_HZ - DURATION_S / 2) < 0.3


@pytest.mark.parametrize("name", ["mp3-44k.mp3", "wav-8k-mono.wav", "aac.m4a", "opus.webm"])
def test_duration_limit_is_422(encoded: dict[str, Path], name: str) -> None:
    with pytest.raises(UnprocessableAudioError, match="limit"):
        decode_16k_mono(encoded[name], max_duration_s=1.0)
    assert decode_16k_mono(encoded[name], max_duration_s=DURATION_S).size > 0


def test_nan_samples_are_422(tmp_path: Path) -> None:
    samples = chirp(16000, 1)
    samples[100:200] = np.nan
    path = tmp_path / "nan.wav"
    path.write_bytes(wav_bytes(samples, 16000, subtype="FLOAT"))
    with pytest.raises(UnprocessableAudioError, match="NaN"):
        decode_16k_mono(path)


def write_video(path: Path, container_format: str, codec: str, frames: int = 5) -> Path:
    """A small silent video (or a single image with image2/png): it has no audio stream."""
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height = 32, 32
        stream.pix_fmt = "rgb24" if codec == "png" else "yuv420p"
        for index in range(frames):
            image = av.VideoFrame.from_ndarray(np.full((32, 32, 3), index * 40, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.mark.parametrize(
    ("name", "container_format", "codec", "frames"),
    [
        ("video.webm", "webm", "libvpx", 5),
        ("video.mp4", "mp4", "mpeg4", 5),
        ("image.png", "image2", "png", 1),
    ],
)
def test_files_without_an_audio_stream_are_415(
    tmp_path: Path, name: str, container_format: str, codec: str, frames: int
) -> None:
    path = write_video(tmp_path / name, container_format, codec, frames)
    if name.endswith(".png"):
        assert path.read_bytes().startswith(b"\x89PNG")
    assert_refused(path, UnsupportedMediaError)


def test_shared_audio_imports_no_engine() -> None:
    """The API image has no torch: importing this module must not need it."""
    code = "import sys, shared.audio; bad = {'torch', 'funasr', 'faster_whisper'} & set(sys.modules); print(bad)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "set()"


def test_pcm16_conversion() -> None:
    data = np.array([0, 16384, -32768, 32767], dtype="<i2").tobytes() + b"\x01"
    converted = pcm16le_to_float32(data)
    assert converted.dtype == np.float32
    assert converted.tolist() == [0.0, 0.5, -1.0, 32767 / 32768]
    assert pcm16le_to_float32(b"").size == 0


def flac_without_length(path: Path, duration_s: float = DURATION_S) -> Path:
    """A FLAC whose STREAMINFO says "total samples unknown" (0), as streaming encoders write it."""
    buffer = io.BytesIO()
    soundfile.write(buffer, chirp(16000, 1, duration_s), 16000, format="FLAC")
    data = bytearray(buffer.getvalue())
    streaminfo = 8  # after "fLaC" and the metadata block header
    data[streaminfo + 13] &= 0xF0  # the 36-bit sample count: low 4 bits of byte 13, bytes 14-17
    data[streaminfo + 14 : streaminfo + 18] = bytes(4)
    data[streaminfo + 18 : streaminfo + 34] = bytes(16)  # MD5 unknown too
    path.write_bytes(bytes(data))
    return path


def test_a_flac_without_a_length_in_its_header_is_measured(tmp_path: Path) -> None:
    path = flac_without_length(tmp_path / "stream.flac")
    assert abs(probe(path).duration_s - DURATION_S) < TOLERANCE_S
    assert abs(probe(path, max_duration_s=60).duration_s - DURATION_S) < TOLERANCE_S
    assert abs(decode_16k_mono(path, max_duration_s=60).size / TARGET_SAMPLE_RATE_HZ - DURATION_S) < TOLERANCE_S


def test_a_flac_without_a_length_over_the_limit_is_422_with_a_sane_message(tmp_path: Path) -> None:
    path = flac_without_length(tmp_path / "long.flac", duration_s=8.0)
    for check in (lambda: probe(path, max_duration_s=2.0), lambda: decode_16k_mono(path, max_duration_s=2.0)):
        with pytest.raises(UnprocessableAudioError, match="more than 2 s") as caught:
            check()
        assert "576460752303423" not in caught.value.message
