"""The engine contract: one options object in, a typed Transcript out.

Every engine (Whisper now, FunASR next) implements `Engine`, so services never know which
library runs underneath, and a worker picks its engine by configuration alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from shared.transcript import Transcript

SAMPLE_RATE_HZ = 16000

#: Called with the fraction of audio done (0..1); raising from it aborts the transcription.
ProgressCallback = Callable[[float], None]


@dataclass(frozen=True)
class TranscriptionOptions:
    language: str | None = None
    hotwords: tuple[str, ...] = ()
    diarize: bool = False
    mode: Literal["file", "sentence"] = "file"
    word_timestamps: bool = False
    #: Bounds for the number of speakers when diarizing; None lets the engine estimate it.
    min_speakers: int | None = None
    max_speakers: int | None = None


class Engine(Protocol):
    name: str
    model_name: str
    supports_diarization: bool

    def transcribe(
        self, audio: np.ndarray, options: TranscriptionOptions, progress: ProgressCallback | None = None
    ) -> Transcript:
        """Transcribe float32 mono 16 kHz samples."""
        ...
