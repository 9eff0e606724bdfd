"""The engine contract: one options object in, a typed Transcript out.

Every file engine (Whisper, FunASR) implements `Engine`, so services never know which library
runs underneath, and a worker picks its engine by configuration alone (registry.py, from the
engine catalog in shared/engines_catalog).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from shared.transcript import Transcript, Word

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
    #: Inverse text normalization where the model has a switch for it; None: its default.
    use_itn: bool | None = None


class Engine(Protocol):
    name: str
    model_name: str
    supports_diarization: bool

    def transcribe(
        self, audio: np.ndarray, options: TranscriptionOptions, progress: ProgressCallback | None = None
    ) -> Transcript:
        """Transcribe float32 mono 16 kHz samples."""
        ...


# --- live streaming ------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamOptions:
    language: str | None = None
    hotwords: tuple[str, ...] = ()
    #: False when the client shows no partial results: the engine then skips their decodes.
    want_partials: bool = True
    #: Audio between two partial decodes of a sentence once its first words are out.
    partial_interval_ms: int = 500
    #: FunASR runtime's modes, for engines with a streaming model: "2pass" streams partials and
    #: corrects each closed sentence with the offline model; "online" sends streaming text only
    #: (a final is the sentence's streaming text); "offline" sends corrected sentences only.
    mode: Literal["2pass", "online", "offline"] = "2pass"
    #: The client's streaming-model settings (FunASR's `chunk_size` in 60 ms frames, and how many
    #: chunks encoder and decoder look back); None: the engine's defaults.
    chunk_size: tuple[int, int, int] | None = None
    encoder_chunk_look_back: int | None = None
    decoder_chunk_look_back: int | None = None


@dataclass(frozen=True)
class StreamEvent:
    """A result of a live session, with times in milliseconds from the session's start.

    `partial`: `text` is the whole current hypothesis of the sentence in progress (it may still
    change), `stable_text` the part of it that will not (whole, not a delta; it only grows
    within a sentence). Engines whose partials never change set both the same. `final`: the
    sentence, decoded once more in full, punctuated (`stable_text` is its text), with its
    `words` timed on the session's clock (seconds), joined by spaces they make up its text.
    """

    kind: Literal["partial", "final"]
    index: int
    text: str
    start_ms: int
    end_ms: int
    stable_text: str | None = None
    words: tuple[Word, ...] = ()

    @property
    def stable(self) -> str:
        """The part of `text` that will not change."""
        return self.text if self.stable_text is None else self.stable_text


class StreamSession(Protocol):
    """One live session's model state; fed from one thread, in order."""

    def accept_audio(self, samples: np.ndarray) -> list[StreamEvent]:
        """Take float32 16 kHz mono samples; returns the finals of sentences they closed."""
        ...

    def partial(self) -> StreamEvent | None:
        """Decode the open sentence again when enough new audio came since the last time; a
        partial when its stable text grew, else None. Cheap to call often: it paces itself."""
        ...

    def finish(self) -> list[StreamEvent]:
        """The audio has ended: the final of the sentence still open, if any."""
        ...


class StreamingEngine(Protocol):
    """An engine that can also serve live sessions: the seam the FunASR 2pass engine fills."""

    name: str
    model_name: str

    def open_stream(self, options: StreamOptions) -> StreamSession:
        ...
