"""Live transcription with FunASR, the way FunASR's own runtime serves `2pass`.

Three models, each doing what it is good at:

- a streaming Paraformer (ParaformerStreaming) decodes the open sentence chunk by chunk
  (`chunk_size` [0, 10, 5] = 600 ms chunks by default, or the client's): its text only grows,
  so every chunk's tokens are a stable partial. Its `cache` holds the encoder and decoder state
  between chunks, one per session: the reason a session is pinned to one process;
- the real fsmn-vad in online mode (the project's numpy FsmnVadStream, as the Whisper stream
  uses it) says where a sentence starts and ends;
- in `2pass` and `offline` mode each closed sentence is decoded once more by the offline model
  (the file engine's, e.g. SeacoParaformer, with the client's hotwords) plus punctuation: the
  corrected final. In `online` mode the final is the sentence's streaming text.

The streaming model hears each sentence's audio only (from the VAD's start, which looks back),
not the silence between sentences, and starts over with a fresh cache at each sentence. Memory
stays flat: only the open sentence's audio and a short pre-roll are kept.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shared.config import FunAsrSettings
from shared.engines_catalog.funasr import FUNASR
from shared.errors import EngineError
from worker.engines.base import SAMPLE_RATE_HZ, StreamEvent, StreamOptions
from worker.engines.fsmn_vad import current_log_levels, restore_process_settings
from worker.engines.fsmn_vad_lite import FsmnVadLite
from worker.engines.funasr_engine import resolve_funasr_model
from worker.engines.model_files import resolve_vad_model_dir
from worker.engines.vad_sentences import VadSentenceSession, VadStream

logger = logging.getLogger(__name__)

#: FunASR's defaults for paraformer-zh-streaming: 600 ms chunks with 300 ms look-ahead, the
#: encoder attending 4 chunks back and the decoder 1 (OFFLINE-MODELS.md, "Streaming").
DEFAULT_CHUNK_SIZE = (0, 10, 5)
DEFAULT_ENCODER_CHUNK_LOOK_BACK = 4
DEFAULT_DECODER_CHUNK_LOOK_BACK = 1
#: Samples in one of chunk_size's 60 ms frames.
FRAME_SAMPLES = 960
#: A sentence longer than this is cut and finalised: the offline model decodes it whole.
MAX_SENTENCE_S = 60.0
#: The offline decode of a sentence is padded so it hears word onsets and endings whole.
PAD_MS = 200


class SentenceDecoder(Protocol):
    """The offline half of 2pass: the file engine's ASR + punctuation on one sentence."""

    model_name: str

    def decode_sentence(self, audio: np.ndarray, hotwords: tuple[str, ...] = ()) -> str:
        ...


def join_stream_text(before: str, piece: str) -> str:
    """Streaming chunks' texts joined: Chinese characters touch, Latin words get a space."""
    piece = piece.strip()
    if not before or not piece:
        return before + piece
    if before[-1].isascii() and before[-1].isalnum() and piece[0].isascii() and piece[0].isalnum():
        return f"{before} {piece}"
    return before + piece


class FunAsrStreamSession(VadSentenceSession):
    """One live session: its own streaming cache, VAD state and audio window over shared models."""

    max_sentence_s = MAX_SENTENCE_S

    def __init__(self, stream_model: Any, offline: SentenceDecoder | None, vad: VadStream,
                 options: StreamOptions) -> None:
        if options.mode != "online" and offline is None:
            raise EngineError(f"the {options.mode} mode needs the offline model")
        super().__init__(vad)
        self._stream_model = stream_model
        self._offline = offline
        self._mode = options.mode
        self._hotwords = options.hotwords
        self._want_partials = options.want_partials and options.mode != "offline"
        chunk_size = options.chunk_size or DEFAULT_CHUNK_SIZE
        self._chunk_kwargs: dict[str, Any] = {
            "chunk_size": list(chunk_size),
            "encoder_chunk_look_back": (DEFAULT_ENCODER_CHUNK_LOOK_BACK if options.encoder_chunk_look_back is None
                                        else options.encoder_chunk_look_back),
            "decoder_chunk_look_back": (DEFAULT_DECODER_CHUNK_LOOK_BACK if options.decoder_chunk_look_back is None
                                        else options.decoder_chunk_look_back),
            "disable_pbar": True,
        }
        #: The streaming model decodes this many samples at a time; partials wait for one.
        self._stride = max(1, chunk_size[1]) * FRAME_SAMPLES
        #: The streaming model's state for the open sentence; a new one for each sentence.
        self._cache: dict[str, Any] = {}
        #: Absolute sample up to which the open sentence's audio went to the streaming model.
        self._fed = 0
        self._stream_text = ""
        self._partial_text = ""

    def partial(self) -> StreamEvent | None:
        """Feed the streaming model what came since the last time, once there is a chunk of it;
        its tokens never change afterwards, so whatever it adds is stable at once."""
        if not self._want_partials or self._open_start_ms is None:
            return None
        if self._total - self._fed < self._stride:
            return None
        self._feed(self._total, is_final=False)
        if self._stream_text == self._partial_text:
            return None
        self._partial_text = self._stream_text
        return StreamEvent("partial", self._index, self._stream_text, self._open_start_ms, self._now_ms())

    # --- inside --------------------------------------------------------------------------
    def _open(self, start_ms: int) -> None:
        super()._open(start_ms)
        assert self._open_start_ms is not None
        self._fed = max(self._window_start, self._open_start_ms * SAMPLE_RATE_HZ // 1000)
        self._cache = {}
        self._stream_text = self._partial_text = ""

    def _close(self, end_ms: int) -> list[StreamEvent]:
        """Finalise the open sentence [open start, end_ms]: its streaming text flushed
        (online), or the offline model's corrected text (2pass, offline)."""
        start_ms = self._open_start_ms if self._open_start_ms is not None else end_ms
        self._open_start_ms = None
        if self._mode == "online":
            self._feed(max(self._fed, end_ms * SAMPLE_RATE_HZ // 1000), is_final=True)
            text = self._stream_text
        else:
            assert self._offline is not None
            text = self._offline.decode_sentence(self._clip(start_ms - PAD_MS, end_ms + PAD_MS), self._hotwords)
            # A partial already shown under this index must end in a final, or the client's
            # pending text would hang: the streaming text stands in for an empty correction.
            text = text or self._stream_text
        self._cache = {}
        self._stream_text = self._partial_text = ""
        return self._final(text, start_ms, end_ms)

    def _keep_floor_sample(self) -> int:
        """Before the open sentence's start (less the padding) and what the streaming model
        has not had yet."""
        assert self._open_start_ms is not None
        return min((self._open_start_ms - PAD_MS) * SAMPLE_RATE_HZ // 1000, self._fed)

    def _feed(self, upto: int, *, is_final: bool) -> None:
        """The open sentence's audio from `_fed` to `upto` through the streaming model; the
        model keeps the part short of a whole chunk in its cache until the next call."""
        start = max(self._fed, self._window_start) - self._window_start
        end = min(upto, self._total) - self._window_start
        piece = self._window[start:max(start, end)]
        self._fed = max(self._fed, upto)
        if piece.size == 0 and not is_final:
            return
        try:
            results = self._stream_model.generate(input=piece, cache=self._cache, is_final=is_final,
                                                  **self._chunk_kwargs)
        except Exception as exc:  # a model failure ends the session with its reason, never the worker
            raise EngineError(f"the FunASR streaming model failed: {type(exc).__name__}: {exc}") from exc
        text = str(results[0].get("text", "")) if results else ""
        self._stream_text = join_stream_text(self._stream_text, text)


class FunAsrStreamEngine:
    """The funasr engine's live half, loaded once per stream worker process at its start: the
    streaming model and the numpy fsmn-vad here, the offline model + punctuation borrowed from
    the file engine the worker already loaded (one copy of them per process)."""

    name = FUNASR.name

    def __init__(self, settings: FunAsrSettings, offline: SentenceDecoder) -> None:
        """`settings`: the FunASR section (`Settings.funasr`), all this engine reads."""
        if not settings.funasr_stream_asr_model:
            raise EngineError("live sessions on the funasr engine need ODDASR_FUNASR_STREAM_ASR_MODEL "
                              "(a streaming Paraformer: a hub id such as paraformer-zh-streaming, or a directory)")
        saved_levels = current_log_levels()
        from funasr import AutoModel

        threads = settings.cpu_threads or os.cpu_count() or 1
        model = resolve_funasr_model(settings.funasr_stream_asr_model, settings)
        try:
            self._stream_model = AutoModel(model=model, device=settings.device, ncpu=threads, disable_update=True,
                                           disable_pbar=True, disable_log=True)
        except Exception as exc:  # FunASR raises anything from a bad config; say which model
            raise EngineError(f"FunASR could not load {model}: {type(exc).__name__}: {exc}") from exc
        finally:
            restore_process_settings(threads, saved_levels)
        vad_dir = (Path(resolve_funasr_model(settings.funasr_vad_model, settings)) if settings.funasr_vad_model
                   else resolve_vad_model_dir(settings.vad_model_dir))
        self._vad = FsmnVadLite(vad_dir, max_end_silence_ms=settings.vad_max_end_silence_ms)
        self._offline = offline
        stream_name = Path(settings.funasr_stream_asr_model).name or settings.funasr_stream_asr_model
        self.model_name = f"{stream_name}+{offline.model_name}"
        logger.info("funasr streaming model %s loaded (offline model %s)", stream_name, offline.model_name)

    def open_stream(self, options: StreamOptions) -> FunAsrStreamSession:
        """A live session on this process's models: its own streaming cache and VAD state."""
        return FunAsrStreamSession(self._stream_model, self._offline, self._vad.open_stream(), options)
