"""The FunASR streaming engine fed audio directly: a tiny random ParaformerStreaming for the
streaming text, the tiny SeacoParaformer + CT-Transformer for 2pass corrections, and the real
fsmn-vad weights for sentence ends.

The models' text is noise (random weights): these tests check the structure of what a session
says (which events, their indices, times and order, what grows and what is final) and that
each session's state is its own, never the words. The streaming model runs without dither, so
its text is deterministic and two sessions can be compared exactly; the offline model's is not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.streaming import vocabulary as v
from api.streaming.protocols.funasr import FunAsrProtocol
from shared.audio import decode_16k_mono
from shared.config import Settings
from shared.errors import EngineError
from shared.stream_messages import SessionRequest
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from tests.support.stream_feed import feed as feed_frames
from worker.engines.base import SAMPLE_RATE_HZ, StreamEvent, StreamOptions
from worker.engines.funasr_engine import FunAsrEngine, funasr_models
from worker.engines.funasr_stream import (
    DEFAULT_CHUNK_SIZE,
    FunAsrStreamEngine,
    FunAsrStreamSession,
    join_stream_text,
)
from worker.engines.registry import load_engine, load_streaming_engine

FRAME = 960  # 60 ms, what FunASR's clients send


def stream_settings(tmp: Path, models: dict[str, Path], **overrides: object) -> Settings:
    values: dict[str, Any] = {"engine": "funasr", "funasr_asr_model": str(models["asr"]),
                              "funasr_punc_model": str(models["punc"]),
                              "funasr_stream_asr_model": str(models["stream"]), "cpu_threads": 2, "data_dir": tmp}
    return Settings(**{**values, **overrides})


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory, tiny_funasr_models: dict[str, Path]) -> FunAsrEngine:
    loaded = load_engine(stream_settings(tmp_path_factory.mktemp("fs"), tiny_funasr_models))
    assert isinstance(loaded, FunAsrEngine)
    return loaded


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, tiny_funasr_models: dict[str, Path],
           offline: FunAsrEngine) -> FunAsrStreamEngine:
    loaded = load_streaming_engine(stream_settings(tmp_path_factory.mktemp("fs"), tiny_funasr_models), offline)
    assert isinstance(loaded, FunAsrStreamEngine)
    return loaded


@pytest.fixture(scope="module")
def speech(speech_dir: Path) -> np.ndarray:
    """Two spoken sentences with a 1.2 s pause: the VAD (800 ms end silence) closes each."""
    return decode_16k_mono(make_long_recording([REFERENCE_SENTENCES[1], REFERENCE_SENTENCES[3]],
                                               speech_dir / "stream-two.wav", gap_s=1.2))


def feed(session: Any, audio: np.ndarray, *, finish: bool = True) -> list[StreamEvent]:
    """As the session loop does: 60 ms frames, a partial asked for after each."""
    return feed_frames(session, audio, FRAME, finish=finish)


def check_well_formed(events: list[StreamEvent], audio_ms: int) -> None:
    """Indices count up from 0; a sentence's partials grow and come before its final; times
    are ordered and inside the audio; sentences do not overlap."""
    finals = [e for e in events if e.kind == "final"]
    assert [e.index for e in finals] == list(range(len(finals)))
    last_end = 0
    for final in finals:
        assert last_end <= final.start_ms < final.end_ms <= audio_ms
        last_end = final.end_ms
    closed: set[int] = set()
    texts: dict[int, str] = {}
    for event in events:
        assert event.index not in closed, f"an event for sentence {event.index} after its final"
        assert event.text.strip()
        if event.kind == "partial":
            assert event.text.startswith(texts.get(event.index, "")) and event.text != texts.get(event.index)
            assert event.start_ms <= event.end_ms <= audio_ms + 100
            texts[event.index] = event.text
        else:
            closed.add(event.index)


def test_2pass_streams_growing_partials_and_one_corrected_final_per_sentence(
        engine: FunAsrStreamEngine, speech: np.ndarray) -> None:
    """Text is noise: two sentences spoken, two finals, partials before each."""
    events = feed(engine.open_stream(StreamOptions(mode="2pass")), speech)
    check_well_formed(events, speech.size * 1000 // SAMPLE_RATE_HZ)
    finals = [e for e in events if e.kind == "final"]
    assert len(finals) == 2
    for final in finals:
        assert any(e.kind == "partial" and e.index == final.index for e in events)
    # partials come a chunk (600 ms) at a time, stamped with the audio heard so far
    ends = [e.end_ms for e in events if e.kind == "partial" and e.index == 0]
    assert all(later - earlier >= 600 for earlier, later in zip(ends, ends[1:], strict=False))


def test_online_finals_are_the_streaming_text_flushed(engine: FunAsrStreamEngine, speech: np.ndarray) -> None:
    events = feed(engine.open_stream(StreamOptions(mode="online")), speech)
    check_well_formed(events, speech.size * 1000 // SAMPLE_RATE_HZ)
    finals = [e for e in events if e.kind == "final"]
    assert len(finals) == 2
    for final in finals:
        last_partial = [e.text for e in events if e.kind == "partial" and e.index == final.index][-1]
        assert final.text.startswith(last_partial)  # the flush only adds the tail chunk's tokens


def test_offline_mode_says_corrected_finals_only(engine: FunAsrStreamEngine, speech: np.ndarray) -> None:
    events = feed(engine.open_stream(StreamOptions(mode="offline", want_partials=True)), speech)
    assert [e.kind for e in events] == ["final", "final"]
    check_well_formed(events, speech.size * 1000 // SAMPLE_RATE_HZ)


def test_finish_flushes_the_open_sentence(engine: FunAsrStreamEngine, speech: np.ndarray) -> None:
    half = speech[:2 * SAMPLE_RATE_HZ]  # stops mid-sentence: the VAD has not seen its end
    session = engine.open_stream(StreamOptions(mode="2pass"))
    events = feed(session, half, finish=False)
    assert not [e for e in events if e.kind == "final"]
    flushed = session.finish()
    assert len(flushed) == 1 and flushed[0].kind == "final" and flushed[0].index == 0
    assert 1900 <= flushed[0].end_ms <= 2000  # the VAD's flush ends it on its last whole frame
    assert session.finish() == []  # nothing open any more


def test_finalize_then_continue_keeps_counting_on_the_session_clock(
        engine: FunAsrStreamEngine, speech: np.ndarray) -> None:
    cut = 2 * SAMPLE_RATE_HZ
    session = engine.open_stream(StreamOptions(mode="online"))
    first = feed(session, speech[:cut])  # a client's Finalize mid-sentence
    rest = feed(session, speech[cut:])
    finals = [e for e in first + rest if e.kind == "final"]
    assert [e.index for e in finals] == list(range(len(finals))) and len(finals) >= 2
    assert 1900 <= finals[0].end_ms <= 2000
    assert all(e.start_ms >= 2000 for e in rest)  # the VAD's new clock is moved onto the session's
    check_well_formed(first + rest, speech.size * 1000 // SAMPLE_RATE_HZ)


def test_two_interleaved_sessions_keep_their_own_cache(engine: FunAsrStreamEngine, speech: np.ndarray) -> None:
    """One process serves one session at a time, but nothing may leak between sessions: fed
    frame by frame in turn (one of them the audio reversed), each says what it says alone."""
    other = speech[::-1].copy()
    alone_a = feed(engine.open_stream(StreamOptions(mode="online")), speech)
    alone_b = feed(engine.open_stream(StreamOptions(mode="online")), other)
    a, b = engine.open_stream(StreamOptions(mode="online")), engine.open_stream(StreamOptions(mode="online"))
    mixed_a: list[StreamEvent] = []
    mixed_b: list[StreamEvent] = []
    for offset in range(0, speech.size, FRAME):
        for session, audio, events in ((a, speech, mixed_a), (b, other, mixed_b)):
            events.extend(session.accept_audio(audio[offset:offset + FRAME]))
            partial = session.partial()
            if partial is not None:
                events.append(partial)
    mixed_a.extend(a.finish())
    mixed_b.extend(b.finish())
    assert mixed_a == alone_a and mixed_b == alone_b
    assert alone_a != alone_b


class Recorder:
    """Wraps a model to see what the session passes it (the call still runs for real)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[dict[str, Any]] = []

    def generate(self, **kwargs: Any) -> Any:
        self.calls.append({k: v for k, v in kwargs.items() if k not in {"input", "cache"}})
        return self.inner.generate(**kwargs)

    model_name = "recorded"

    def decode_sentence(self, audio: np.ndarray, hotwords: tuple[str, ...] = ()) -> str:
        self.calls.append({"hotwords": hotwords, "samples": audio.size})
        return self.inner.decode_sentence(audio, hotwords)


def test_client_chunk_settings_reach_the_streaming_model_and_hotwords_the_offline_one(
        engine: FunAsrStreamEngine, offline: FunAsrEngine, speech: np.ndarray) -> None:
    stream_model, corrector = Recorder(engine._stream_model), Recorder(offline)
    options = StreamOptions(mode="2pass", hotwords=("abc", "def"), chunk_size=(5, 5, 5), encoder_chunk_look_back=2,
                            decoder_chunk_look_back=0)
    events = feed(FunAsrStreamSession(stream_model, corrector, engine._vad.open_stream(), options), speech)
    assert stream_model.calls and all(
        c["chunk_size"] == [5, 5, 5] and c["encoder_chunk_look_back"] == 2 and c["decoder_chunk_look_back"] == 0
        for c in stream_model.calls)
    assert [c["hotwords"] for c in corrector.calls] == [("abc", "def")] * 2
    partial_ends = [e.end_ms for e in events if e.kind == "partial" and e.index == 0]
    assert any(later - earlier < 600 for earlier, later in zip(partial_ends, partial_ends[1:], strict=False)), \
        "300 ms chunks should give partials more often than every 600 ms"
    default = Recorder(engine._stream_model)
    feed(FunAsrStreamSession(default, corrector, engine._vad.open_stream(), StreamOptions(mode="online")),
         speech[:SAMPLE_RATE_HZ * 2])
    assert default.calls[0]["chunk_size"] == list(DEFAULT_CHUNK_SIZE)
    assert (default.calls[0]["encoder_chunk_look_back"], default.calls[0]["decoder_chunk_look_back"]) == (4, 1)


def test_streaming_text_joins_like_the_language_writes() -> None:
    assert join_stream_text("", "你好") == "你好"
    assert join_stream_text("你好", "世界") == "你好世界"
    assert join_stream_text("hello", "world ") == "hello world"
    assert join_stream_text("hello,", "世界") == "hello,世界"
    assert join_stream_text("abc", "") == "abc"


def test_a_stream_worker_without_a_streaming_model_says_what_to_set(tmp_path: Path, offline: FunAsrEngine,
                                                                    tiny_funasr_models: dict[str, Path]) -> None:
    settings = stream_settings(tmp_path, tiny_funasr_models, funasr_stream_asr_model="")
    with pytest.raises(EngineError, match="ODDASR_FUNASR_STREAM_ASR_MODEL"):
        load_streaming_engine(settings, offline)


def test_models_download_includes_the_streaming_model() -> None:
    settings = Settings(engine="funasr", funasr_asr_model="paraformer-zh",
                        funasr_stream_asr_model="paraformer-zh-streaming")
    assert funasr_models(settings)["stream"] == "paraformer-zh-streaming"
    assert "stream" not in funasr_models(Settings(engine="funasr", funasr_asr_model="paraformer-zh"))


def test_funasr_client_mode_and_chunk_settings_travel_to_the_worker() -> None:
    start = FunAsrProtocol().parse_start(json.dumps({"mode": "online", "chunk_size": "5,10,5",
                                                     "encoder_chunk_look_back": 4, "decoder_chunk_look_back": 0}))
    assert (start.mode, start.chunk_size, start.encoder_chunk_look_back, start.decoder_chunk_look_back) == \
        ("online", (5, 10, 5), 4, 0)
    bare = FunAsrProtocol().parse_start(json.dumps({"mode": "offline"}))
    assert (bare.mode, bare.chunk_size, bare.encoder_chunk_look_back) == ("offline", None, None)
    request = SessionRequest(session_id="s", job_id="s", fence=1, expires_at_s=0.0, mode=start.mode,
                             chunk_size=start.chunk_size, encoder_chunk_look_back=4, decoder_chunk_look_back=0)
    again = SessionRequest.model_validate_json(request.model_dump_json())
    assert again.chunk_size == (5, 10, 5) and again.mode == "online" and again.decoder_chunk_look_back == 0
    for bad in ({"chunk_size": [5, 0, 5]}, {"chunk_size": [5, 10, 500]}, {"encoder_chunk_look_back": -1},
                {"decoder_chunk_look_back": "1"}):
        with pytest.raises(v.ProtocolError):
            FunAsrProtocol().parse_start(json.dumps({"mode": "2pass", **bad}))
