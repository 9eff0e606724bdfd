"""Pick and load the engine a worker is configured for: the seam where FunASR plugs in."""

from __future__ import annotations

from shared.config import Settings
from shared.errors import NotSupportedError
from worker.engines.base import Engine


def load_engine(settings: Settings) -> Engine:
    if settings.engine == "whisper":
        from worker.engines.whisper_engine import WhisperEngine

        return WhisperEngine(settings)
    raise NotSupportedError(f"the {settings.engine} engine is not built yet; set ODDASR_ENGINE=whisper")
