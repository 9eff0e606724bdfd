"""Pick and load the engine a worker is configured for: the seam where FunASR plugs in."""

from __future__ import annotations

from collections.abc import Callable

from shared.config import Settings
from shared.errors import NotSupportedError
from worker.engines.base import Engine, StreamingEngine
from worker.engines.live_engines import LiveEngines, wants_moonshine


def load_engine(settings: Settings) -> Engine:
    if settings.engine == "whisper":
        from worker.engines.whisper_engine import WhisperEngine

        return WhisperEngine(settings.whisper)
    if settings.engine == "funasr":
        from worker.engines.funasr_engine import FunAsrEngine

        return FunAsrEngine(settings.funasr)
    raise NotSupportedError(f"unknown engine {settings.engine!r}: use whisper or funasr")


def load_streaming_engine(settings: Settings, engine: Engine) -> StreamingEngine:
    """The engine of `stream_engine` (Whisper or FunASR 2pass) built on the file engine this
    process loaded. Whisper streams with its own model. FunASR adds a streaming model and borrows
    the file engine's offline model and punctuation for 2pass corrections, so they load once per
    process."""
    if settings.engine == "funasr":
        from worker.engines.funasr_engine import FunAsrEngine
        from worker.engines.funasr_stream import FunAsrStreamEngine

        assert isinstance(engine, FunAsrEngine)
        return FunAsrStreamEngine(settings.funasr, offline=engine)
    if hasattr(engine, "open_stream"):
        return engine  # type: ignore[return-value]
    raise NotSupportedError(f"the {engine.name} engine cannot serve live sessions")


def load_live_engines(settings: Settings, engine: Engine,
                      partial_share: Callable[[], float] | None = None) -> LiveEngines:
    """What a stream worker process serves live sessions with (`stream_engine`, see live_engines).
    `partial_share`: the share of a core each live session's partials may use now."""
    moonshine = None
    if wants_moonshine(settings):
        from worker.engines.fsmn_vad_lite import FsmnVadLite
        from worker.engines.model_files import resolve_vad_model_dir
        from worker.engines.moonshine_model import MoonshineModel
        from worker.engines.moonshine_stream import LIVE_VAD_START, PARTIAL_CPU_SHARE, MoonshineStreamEngine

        vad = FsmnVadLite(resolve_vad_model_dir(settings.vad_model_dir),
                          max_end_silence_ms=settings.vad_max_end_silence_ms, start_overrides=LIVE_VAD_START)
        # One intra-op thread per decode: the sessions of a process decode side by side.
        moonshine = MoonshineStreamEngine(MoonshineModel(cpu_threads=1), vad,
                                          partial_share or (lambda: PARTIAL_CPU_SHARE))
    general = None if settings.stream_engine == "moonshine" else load_streaming_engine(settings, engine)
    return LiveEngines(mode=settings.stream_engine, general=general, moonshine=moonshine)
