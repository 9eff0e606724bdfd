"""Pick and load the engine a worker is configured for: the seam where FunASR plugs in."""

from __future__ import annotations

from shared.config import Settings
from shared.errors import NotSupportedError
from worker.engines.base import Engine


def load_engine(settings: Settings) -> Engine:
    if settings.engine == "whisper":
        from worker.engines.whisper_engine import WhisperEngine

        return WhisperEngine(settings)
    if settings.engine == "funasr":
        from worker.engines.funasr_engine import FunAsrEngine

        return FunAsrEngine(settings)
    raise NotSupportedError(f"unknown engine {settings.engine!r}: use whisper or funasr")
