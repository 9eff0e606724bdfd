"""The Whisper engine's section (faster-whisper / CTranslate2), with speaker labels."""

from __future__ import annotations

from shared.config.model_runtime import ModelRuntimeSettings


class WhisperSettings(ModelRuntimeSettings):
    """What the Whisper engine reads; it takes this section (`settings.whisper`), not all settings."""

    #: "base" (multilingual, default), "tiny.en", or a directory with a CTranslate2 model.
    whisper_model: str = "base"
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = 5
    #: VAD chunks decoded together; 1 decodes them one by one (CPU), 8-16 suits a GPU.
    whisper_batch_size: int = 1
    #: VAD pieces are merged up to this length before decoding (Whisper's window is 30 s).
    vad_max_chunk_s: float = 28.0
    #: Speaker labels (diarize) with the Whisper engine. Its speaker-embedding model needs torch
    #: (about 0.25 GB per process): loaded on a worker's first diarize job, never where this is
    #: false, and the API then refuses diarize with 422.
    enable_diarization: bool = True
