"""Pick and load the engine a worker is configured for: the seam where FunASR plugs in."""

from __future__ import annotations

from shared.config import Settings
from shared.errors import NotSupportedError
from worker.engines.base import Engine, StreamingEngine


def load_engine(settings: Settings) -> Engine:
    if settings.engine == "whisper":
        from worker.engines.whisper_engine import WhisperEngine

        return WhisperEngine(settings)
    if settings.engine == "funasr":
        from worker.engines.funasr_engine import FunAsrEngine

        return FunAsrEngine(settings)
    raise NotSupportedError(f"unknown engine {settings.engine!r}: use whisper or funasr")


def load_streaming_engine(settings: Settings, engine: Engine) -> StreamingEngine:
    """What a stream worker serves live sessions with, given the engine it loaded for files.

    Whisper streams with its own model. FunASR adds a streaming model and borrows the file
    engine's offline model and punctuation for 2pass corrections, so they load once per process.
    """
    if settings.engine == "funasr":
        from worker.engines.funasr_engine import FunAsrEngine
        from worker.engines.funasr_stream import FunAsrStreamEngine

        assert isinstance(engine, FunAsrEngine)
        return FunAsrStreamEngine(settings, offline=engine)
    if hasattr(engine, "open_stream"):
        return engine  # type: ignore[return-value]
    raise NotSupportedError(f"the {engine.name} engine cannot serve live sessions")
