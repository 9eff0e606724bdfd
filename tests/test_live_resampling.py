"""A live session at 8 kHz, without the service: the worker's session loop (`SessionRunner._loop`)
fed FunASR-sized frames through its relay by a stand-in for Redis, its engine stream a recorder
of what it gets.

The resampler (soxr's stream) holds back its last 12-115 ms until it is told the input ended;
the session must get them before it closes its sentence, or every 8 kHz stream loses its end.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import soxr

from shared import stream_messages as sm
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from worker.engines.base import SAMPLE_RATE_HZ
from worker.engines.model_files import resolve_vad_model_dir
from worker.engines.whisper_stream import PAD_MS
from worker.streaming.session_loop import SessionRunner

#: 60 ms at 8 kHz, as the FunASR test client sends it.
FRAME_BYTES = 960
FENCE = 7


@pytest.fixture(scope="module")
def speech_16k(speech_dir: Path) -> np.ndarray:
    path = make_long_recording([REFERENCE_SENTENCES[1], REFERENCE_SENTENCES[3]], speech_dir / "stream-two.wav",
                               gap_s=1.2)
    samples, rate = soundfile.read(path, dtype="float32")
    assert rate == SAMPLE_RATE_HZ
    return samples


@pytest.fixture(scope="module")
def pcm_8k(speech_16k: np.ndarray) -> bytes:
    """As tests/test_streaming.py makes it for `audio_fs: 8000`."""
    low = soxr.resample(speech_16k, SAMPLE_RATE_HZ, 8000)
    return (low * 32767).clip(-32768, 32767).astype("<i2").tobytes()


def _float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


class _Session:
    """Records the samples it is given, and where each finish() fell (in samples)."""

    def __init__(self) -> None:
        self.pieces: list[np.ndarray] = []
        self.finished_at: list[int] = []

    def accept_audio(self, samples: np.ndarray) -> list:  # type: ignore[type-arg]
        self.pieces.append(np.array(samples, dtype=np.float32))
        return []

    def partial(self) -> None:
        return None

    def finish(self) -> list:  # type: ignore[type-arg]
        self.finished_at.append(self.received.size)
        return []

    @property
    def received(self) -> np.ndarray:
        return np.concatenate(self.pieces) if self.pieces else np.zeros(0, dtype=np.float32)


class _Recorder:
    def __init__(self) -> None:
        self.pieces: list[np.ndarray] = []

    def write(self, samples: np.ndarray) -> None:
        self.pieces.append(np.array(samples, dtype=np.float32))


class _PubSub:
    """The API's side of the relay: the frames, in order, then nothing."""

    def __init__(self, frames: list[bytes]) -> None:
        self._messages = [{"type": "message", "channel": b"in", "data": frame} for frame in frames]

    def subscribe(self, *channels: str) -> None:
        pass

    def get_message(self, timeout: float = 0.0) -> dict | None:  # type: ignore[type-arg]
        return self._messages.pop(0) if self._messages else None

    def close(self) -> None:
        pass


def _run(pcm_parts: list[bytes], sample_rate_hz: int = 8000) -> tuple[_Session, _Recorder]:
    """The parts in 960-byte frames, a FLUSH between parts, a STOP at the end."""
    frames: list[bytes] = []
    seq = 0

    def header(kind: str) -> sm.RelayHeader:
        nonlocal seq
        seq += 1
        return sm.RelayHeader(kind=kind, seq=seq, fence=FENCE)

    for number, pcm in enumerate(pcm_parts):
        if number:
            frames.append(sm.encode_frame(header(sm.FLUSH)))
        for offset in range(0, len(pcm), FRAME_BYTES):
            frames.append(sm.encode_frame(header(sm.AUDIO), pcm[offset:offset + FRAME_BYTES]))
    frames.append(sm.encode_frame(header(sm.STOP)))
    pubsub = _PubSub(frames)
    runtime = SimpleNamespace(settings=SimpleNamespace(stream_heartbeat_interval_s=3600.0),
                              redis=SimpleNamespace(publish=lambda *a: None, pubsub=lambda **_: pubsub),
                              sensitive_words=SimpleNamespace(mask_text=lambda text: text),
                              jobs=SimpleNamespace(add_stream_segment=lambda *a: None))
    request = sm.SessionRequest(session_id="s", job_id="j", fence=FENCE, expires_at_s=0.0,
                                sample_rate_hz=sample_rate_hz)
    runner = SessionRunner(runtime, SimpleNamespace(name="fake"), request, threading.Event())  # type: ignore[arg-type]
    session, recorder = _Session(), _Recorder()
    runner.relay.open()
    try:
        assert runner._loop(session, recorder, 0.0) == "stopped"  # type: ignore[arg-type]
    finally:
        runner.relay.close()
    return session, recorder


def test_8k_frames_reach_the_session_whole_as_the_one_clip_resample(pcm_8k: bytes) -> None:
    session, recorder = _run([pcm_8k])
    whole = soxr.resample(_float(pcm_8k), 8000, SAMPLE_RATE_HZ)
    received = session.received
    assert whole.size == 2 * (len(pcm_8k) // 2)  # twice the 8 kHz samples
    assert received.size == whole.size, (
        f"the session got {received.size} samples of {whole.size}: "
        f"{(whole.size - received.size) * 1000 / SAMPLE_RATE_HZ:.1f} ms of the end never reached it")
    assert np.abs(received - whole).max() < 1e-6  # frame by frame is the same signal, not merely close
    assert session.finished_at == [whole.size], "the tail came before the sentence was closed"
    assert np.array_equal(np.concatenate(recorder.pieces), received), "the recording is what the session heard"


def test_a_flush_mid_stream_closes_on_all_audio_so_far_and_the_rest_follows(pcm_8k: bytes) -> None:
    cut = (len(pcm_8k) // 2) // FRAME_BYTES * FRAME_BYTES
    parts = [pcm_8k[:cut], pcm_8k[cut:]]
    session, _ = _run(parts)
    expected = [soxr.resample(_float(part), 8000, SAMPLE_RATE_HZ) for part in parts]
    # The session's clock at the flush is the client's: every byte sent so far, resampled.
    assert session.finished_at == [expected[0].size, expected[0].size + expected[1].size]
    received = session.received
    assert np.abs(received[:expected[0].size] - expected[0]).max() < 1e-6
    assert np.abs(received[expected[0].size:] - expected[1]).max() < 1e-6


def test_16k_frames_pass_through_untouched(speech_16k: np.ndarray) -> None:
    pcm = (speech_16k * 32767).clip(-32768, 32767).astype("<i2").tobytes()
    session, _ = _run([pcm], sample_rate_hz=SAMPLE_RATE_HZ)
    assert np.array_equal(session.received, _float(pcm))


def test_the_vad_cuts_8k_speech_where_it_cuts_the_16k_original(speech_16k: np.ndarray, pcm_8k: bytes) -> None:
    """Band-limited audio (nothing above 4 kHz) finds the same sentences, and the padded clip a
    final decodes from the 8 kHz cuts holds all of the speech the original's cuts find."""
    from worker.engines.fsmn_vad_lite import FsmnVadLite

    vad = FsmnVadLite(resolve_vad_model_dir(""), max_end_silence_ms=800)
    session, _ = _run([pcm_8k])
    original = vad.segments_ms(speech_16k)
    from_8k = vad.segments_ms(session.received)
    assert len(original) == len(from_8k) == 2, (original, from_8k)
    for (start, end), (start_8k, end_8k) in zip(original, from_8k, strict=True):
        assert start_8k - PAD_MS <= start and end <= end_8k + PAD_MS, (original, from_8k)
