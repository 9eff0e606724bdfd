"""Whisper through faster-whisper (CTranslate2), with long audio cut by fsmn-vad first.

Neither torch nor FunASR is imported here: fsmn-vad runs in numpy, and the speaker
embedder (torch) loads on the first diarize job of a worker whose settings allow speaker labels,
so a Whisper worker process that never labels speakers stays near the bare decoder's size.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from shared.config import Settings, WhisperSettings
from shared.engines_catalog.whisper import WHISPER
from shared.errors import EngineError, NotSupportedError
from shared.segment_timing import fit_to_speech
from shared.transcript import Segment, Transcript, Word
from worker.engines.base import SAMPLE_RATE_HZ, ProgressCallback, StreamOptions, TranscriptionOptions
from worker.engines.diarization import Embedder, diarize_windows, label_segments
from worker.engines.fsmn_vad import merge_into_chunks
from worker.engines.fsmn_vad_lite import FsmnVadLite
from worker.engines.model_files import ModelFile, resolve_vad_model_dir, resolve_whisper_model, vad_model_file
from worker.engines.speech_spans import speech_spans_s
from worker.engines.voiceprints import RESEMBLYZER_MODEL
from worker.engines.whisper_stream import WhisperStreamSession

logger = logging.getLogger(__name__)

#: Whisper's window; a sentence clip shorter than this is decoded whole, without the VAD.
WHISPER_WINDOW_S = 30.0
#: Speech spans are padded so the decoder hears word onsets and endings whole.
VAD_PAD_MS = 200


def model_files(settings: Settings) -> list[ModelFile]:
    """What the Whisper engine loads: the decoder (pinned PyPI wheels, or a directory) and the VAD."""
    assert settings.model_cache_dir is not None
    cache_dir, model = settings.model_cache_dir, settings.whisper_model
    return [ModelFile(WHISPER.name, model, lambda: resolve_whisper_model(model, cache_dir)), vad_model_file(settings)]


class WhisperEngine:
    name = WHISPER.name

    def __init__(self, settings: WhisperSettings) -> None:
        """`settings`: the Whisper section (`Settings.whisper`), all this engine reads."""
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        assert settings.model_cache_dir is not None
        model_dir = resolve_whisper_model(settings.whisper_model, settings.model_cache_dir)
        self.model_name = settings.whisper_model
        threads = settings.cpu_threads or os.cpu_count() or 1
        self._model = WhisperModel(str(model_dir), device=settings.device,
                                   compute_type=settings.whisper_compute_type, cpu_threads=threads)
        self._vad = FsmnVadLite(resolve_vad_model_dir(settings.vad_model_dir),
                                max_end_silence_ms=settings.vad_max_end_silence_ms)
        self.supports_diarization = WHISPER.supports_diarization(settings)
        #: The model voiceprints are made with (enrollment and identify_speakers); None: no
        #: speaker model may load on this worker.
        self.speaker_model: str | None = RESEMBLYZER_MODEL if settings.enable_diarization else None
        self._device = settings.device
        self._embedder: Embedder | None = None
        self._embedder_lock = threading.Lock()
        self._batch_size = settings.whisper_batch_size
        self._batched = BatchedInferencePipeline(self._model) if self._batch_size > 1 else None
        self._beam_size = settings.whisper_beam_size
        self._max_chunk_s = min(settings.vad_max_chunk_s, WHISPER_WINDOW_S)
        self._english_only = settings.whisper_model.endswith(".en")

    def transcribe(
        self, audio: np.ndarray, options: TranscriptionOptions, progress: ProgressCallback | None = None
    ) -> Transcript:
        if options.diarize and not self.supports_diarization:
            raise NotSupportedError(
                "speaker labels (diarize) are disabled on this worker: set ODDASR_ENABLE_DIARIZATION=true"
            )
        audio_ms = int(audio.size * 1000 / SAMPLE_RATE_HZ)
        speech_ms: list[tuple[int, int]] | None = None
        if options.mode == "sentence" and audio_ms <= WHISPER_WINDOW_S * 1000 and not options.diarize:
            chunks = [(0, audio_ms)] if audio_ms > 0 else []
        else:
            speech_ms = self._vad.segments_ms(audio)
            chunks = merge_into_chunks(speech_ms, max_chunk_s=self._max_chunk_s, pad_ms=VAD_PAD_MS,
                                       audio_ms=audio_ms)
        language = "en" if self._english_only else options.language
        if self._batched is not None and len(chunks) > 1:
            segments, language = self._decode_batched(audio, chunks, language, options, progress)
        else:
            segments, language = self._decode_sequential(audio, chunks, language, options, progress)
        # Whisper's own segment times are timestamp tokens, which drift into round 4-5 s steps
        # back to back across pauses: segments follow the words and the speech instead.
        segments = fit_to_speech(segments, speech_spans_s(self._vad, audio))
        if not options.word_timestamps:
            segments = [s.model_copy(update={"words": []}) for s in segments]
        if options.diarize and speech_ms:
            windows = diarize_windows(audio, speech_ms, self._speaker_embedder(), options.min_speakers,
                                      options.max_speakers)
            segments = label_segments(segments, windows)
        if progress is not None and not chunks:
            progress(1.0)
        return Transcript.from_segments(segments, language=language, duration_s=audio_ms / 1000,
                                        engine=self.name, model=self.model_name)

    @property
    def speaker_model_ready(self) -> bool:
        """False while a diarize job would first have to load the speaker model."""
        return self.speaker_model is None or self._embedder is not None

    def start_loading_speaker_model(self) -> None:
        """Load the speaker embedder in a background thread (`preload_speaker_model`): the
        worker takes jobs meanwhile, and a diarize job that comes first waits on the lock."""
        if self.speaker_model is not None:
            threading.Thread(target=self._speaker_embedder, name="speaker-model-preload", daemon=True).start()

    def _speaker_embedder(self) -> Embedder:
        """Resemblyzer, loaded on first use: it brings torch, which only diarize jobs need."""
        with self._embedder_lock:
            if self._embedder is None:
                from worker.engines.speaker_embeddings import ResemblyzerEmbedder

                logger.info("loading the speaker-embedding model for the first diarize job of this worker")
                self._embedder = ResemblyzerEmbedder(device=self._device)
            return self._embedder

    def embed_speaker(self, clip: np.ndarray) -> np.ndarray:
        """One voice's embedding (Resemblyzer GE2E, L2-normalised), for voiceprints."""
        if self.speaker_model is None:
            raise NotSupportedError("speaker embeddings (voiceprints) are disabled on this worker: set "
                                    "ODDASR_ENABLE_DIARIZATION=true")
        return self._speaker_embedder()(clip)

    def open_stream(self, options: StreamOptions) -> WhisperStreamSession:
        """A live session on this process's model: its own VAD state and audio window."""
        return WhisperStreamSession(self._model, self._vad.open_stream(), options, beam_size=self._beam_size,
                                    english_only=self._english_only)

    def _decode_sequential(
        self, audio: np.ndarray, chunks: list[tuple[int, int]], language: str | None,
        options: TranscriptionOptions, progress: ProgressCallback | None,
    ) -> tuple[list[Segment], str | None]:
        segments: list[Segment] = []
        done_ms = 0
        total_ms = sum(end - start for start, end in chunks) or 1
        for start_ms, end_ms in chunks:
            piece = audio[start_ms * SAMPLE_RATE_HZ // 1000:end_ms * SAMPLE_RATE_HZ // 1000]
            decoded, detected = self._decode(piece, start_ms / 1000, language, options)
            segments.extend(decoded)
            # Keep the first detected language for the rest of the file: a per-chunk guess
            # flips on short or noisy chunks.
            language = language or detected
            done_ms += end_ms - start_ms
            if progress is not None:
                progress(done_ms / total_ms)
        return segments, language

    def _decode_batched(
        self, audio: np.ndarray, chunks: list[tuple[int, int]], language: str | None,
        options: TranscriptionOptions, progress: ProgressCallback | None,
    ) -> tuple[list[Segment], str | None]:
        """All VAD chunks through faster-whisper's batched pipeline: what keeps a GPU busy."""
        assert self._batched is not None
        last_end_s = chunks[-1][1] / 1000
        try:
            raw_segments, info = self._batched.transcribe(
                audio, language=language, beam_size=self._beam_size, batch_size=self._batch_size,
                clip_timestamps=[{"start": start / 1000, "end": end / 1000} for start, end in chunks],
                # Word times always: segments are cut and timed by them (fit_to_speech).
                word_timestamps=True, hotwords=" ".join(options.hotwords) or None,
                condition_on_previous_text=False,
            )
            segments = []
            for raw in raw_segments:
                segment = _to_segment(raw, 0.0)
                if segment is not None:
                    segments.append(segment)
                if progress is not None:
                    progress(min(0.99, raw.end / last_end_s))
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"the Whisper decoder failed: {exc}") from exc
        if progress is not None:
            progress(1.0)
        return segments, language or info.language

    def _decode(
        self, piece: np.ndarray, offset_s: float, language: str | None, options: TranscriptionOptions
    ) -> tuple[list[Segment], str | None]:
        try:
            raw_segments, info = self._model.transcribe(
                piece, language=language, beam_size=self._beam_size, vad_filter=False,
                condition_on_previous_text=False, word_timestamps=True,  # see _decode_batched
                hotwords=" ".join(options.hotwords) or None,
            )
            segments = [s for s in (_to_segment(raw, offset_s) for raw in raw_segments) if s is not None]
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"the Whisper decoder failed: {exc}") from exc
        return segments, info.language


#: A word Whisper times shorter than this was not heard: its place in the audio is a point.
UNHEARD_WORD_S = 0.02


def is_unheard_segment(raw) -> bool:  # type: ignore[no-untyped-def]
    """True for a segment most of whose words have no length in the audio.

    After the last speech of a chunk, Whisper sometimes goes on with a phrase of its training
    data's closing lines ("Thank you very much.", "I'll see you in the next video."): its
    word-time alignment finds no audio for them and piles them at one instant at the chunk's
    end (measured on the two human recordings of bench/streaming.py joined by 1 s of silence,
    Whisper base: 11 words of these in a 131-word transcript, every one of them but the first
    0 s long, no real word under 0.1 s). `hallucination_silence_threshold` did not catch them
    (no silence gap inside the decoded text to look at).
    """
    words = raw.words or []
    unheard = sum(1 for word in words if word.end - word.start < UNHEARD_WORD_S)
    return len(words) >= 2 and unheard * 2 >= len(words)


def _to_segment(raw, offset_s: float) -> Segment | None:  # type: ignore[no-untyped-def]
    """A faster-whisper segment as ours, shifted by the chunk's offset; None when empty or
    unheard (`is_unheard_segment`)."""
    text = raw.text.strip()
    if not text or is_unheard_segment(raw):
        return None
    words = [Word(word=w.word.strip(), start_s=offset_s + w.start, end_s=offset_s + w.end, probability=w.probability)
             for w in (raw.words or [])]
    return Segment(start_s=round(offset_s + raw.start, 3), end_s=round(offset_s + raw.end, 3), text=text, words=words)
