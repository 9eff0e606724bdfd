"""Whisper through faster-whisper (CTranslate2), with long audio cut by fsmn-vad first."""

from __future__ import annotations

import logging
import os

import numpy as np

from shared.config import Settings
from shared.errors import EngineError
from shared.transcript import Segment, Transcript, Word
from worker.engines.base import SAMPLE_RATE_HZ, ProgressCallback, TranscriptionOptions
from worker.engines.diarization import diarize_windows, label_segments
from worker.engines.fsmn_vad import FsmnVad, merge_into_chunks
from worker.engines.model_files import resolve_vad_model_dir, resolve_whisper_model
from worker.engines.speaker_embeddings import ResemblyzerEmbedder

logger = logging.getLogger(__name__)

#: Whisper's window; a sentence clip shorter than this is decoded whole, without the VAD.
WHISPER_WINDOW_S = 30.0
#: Speech spans are padded so the decoder hears word onsets and endings whole.
VAD_PAD_MS = 200


class WhisperEngine:
    name = "whisper"
    supports_diarization = True

    def __init__(self, settings: Settings) -> None:
        from faster_whisper import WhisperModel

        assert settings.model_cache_dir is not None
        model_dir = resolve_whisper_model(settings.whisper_model, settings.model_cache_dir)
        self.model_name = settings.whisper_model
        threads = settings.cpu_threads or os.cpu_count() or 1
        self._model = WhisperModel(str(model_dir), device=settings.device,
                                   compute_type=settings.whisper_compute_type, cpu_threads=threads)
        self._vad = FsmnVad(resolve_vad_model_dir(settings.vad_model_dir),
                            max_end_silence_ms=settings.vad_max_end_silence_ms, cpu_threads=threads)
        self._embedder = ResemblyzerEmbedder(device=settings.device)
        self._beam_size = settings.whisper_beam_size
        self._max_chunk_s = min(settings.vad_max_chunk_s, WHISPER_WINDOW_S)
        self._english_only = settings.whisper_model.endswith(".en")

    def transcribe(
        self, audio: np.ndarray, options: TranscriptionOptions, progress: ProgressCallback | None = None
    ) -> Transcript:
        audio_ms = int(audio.size * 1000 / SAMPLE_RATE_HZ)
        speech_ms: list[tuple[int, int]] | None = None
        if options.mode == "sentence" and audio_ms <= WHISPER_WINDOW_S * 1000 and not options.diarize:
            chunks = [(0, audio_ms)] if audio_ms > 0 else []
        else:
            speech_ms = self._vad.segments_ms(audio)
            chunks = merge_into_chunks(speech_ms, max_chunk_s=self._max_chunk_s, pad_ms=VAD_PAD_MS,
                                       audio_ms=audio_ms)
        language = "en" if self._english_only else options.language
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
        if options.diarize and speech_ms:
            windows = diarize_windows(audio, speech_ms, self._embedder, options.min_speakers, options.max_speakers)
            segments = label_segments(segments, windows)
        if progress is not None and not chunks:
            progress(1.0)
        return Transcript.from_segments(segments, language=language, duration_s=audio_ms / 1000,
                                        engine=self.name, model=self.model_name)

    def _decode(
        self, piece: np.ndarray, offset_s: float, language: str | None, options: TranscriptionOptions
    ) -> tuple[list[Segment], str | None]:
        try:
            raw_segments, info = self._model.transcribe(
                piece, language=language, beam_size=self._beam_size, vad_filter=False,
                condition_on_previous_text=False, word_timestamps=options.word_timestamps,
                hotwords=" ".join(options.hotwords) or None,
            )
            segments = []
            for raw in raw_segments:
                text = raw.text.strip()
                if not text:
                    continue
                words = [Word(word=w.word.strip(), start_s=offset_s + w.start, end_s=offset_s + w.end,
                              probability=w.probability) for w in (raw.words or [])]
                segments.append(Segment(start_s=round(offset_s + raw.start, 3), end_s=round(offset_s + raw.end, 3),
                                        text=text, words=words))
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"the Whisper decoder failed: {exc}") from exc
        return segments, info.language
