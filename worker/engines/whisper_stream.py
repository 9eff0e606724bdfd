"""Live transcription with Whisper: fsmn-vad finds sentence ends, Whisper decodes sentences.

Whisper is not a streaming model, so a live session is built around it:

- the real fsmn-vad model runs in online mode on every frame and says where speech starts and
  where a sentence ends (a pause of `vad_max_end_silence_ms`);
- while a sentence is open, its audio so far is re-decoded greedily every few hundred
  milliseconds; each partial shows the newest hypothesis, and the words two consecutive decodes
  agree on are committed as its stable part (LocalAgreement, as whisper_streaming does), which
  only grows;
- when the sentence closes, its audio is decoded once more with the full beam: the final,
  with Whisper's punctuation.

Memory stays flat however long the session: only the open sentence's audio (at most
`MAX_SENTENCE_S`, where a sentence is cut) and a short pre-roll are kept.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from shared.transcript import Word
from worker.engines.base import SAMPLE_RATE_HZ, StreamEvent, StreamOptions
from worker.engines.partial_agreement import PartialAgreement
from worker.engines.vad_sentences import VadSentenceSession, VadStream

logger = logging.getLogger(__name__)

#: A sentence longer than this is cut and finalised (Whisper's window is 30 s).
MAX_SENTENCE_S = 25.0
#: Decodes are padded so the decoder hears word onsets and endings whole.
PAD_MS = 200
#: Partials are not attempted on less speech than this.
MIN_PARTIAL_SPEECH_MS = 200
#: Silence put in front of every decode: Whisper misreads speech that starts at its window's
#: first sample (measured: "The weather is" became "But wherever is"; with 0.5 s of lead-in the
#: streamed WER equals the file job's on the benchmark audio).
LEAD_SILENCE_S = 0.5
#: Until a sentence has its first stable words, partials are decoded back to back (as soon as
#: new audio has come), not every partial interval: the first words are what users wait for.
EAGER_STEP_MS = 100

class WhisperStreamSession(VadSentenceSession):
    """One live session over a shared WhisperModel; its own VAD cache and audio window."""

    max_sentence_s = MAX_SENTENCE_S

    def __init__(self, model: Any, vad: VadStream, options: StreamOptions, *, beam_size: int,
                 english_only: bool) -> None:
        super().__init__(vad)
        self._model = model
        self._beam_size = beam_size
        self._language = "en" if english_only else options.language
        self._hotwords = " ".join(options.hotwords) or None
        self._want_partials = options.want_partials
        self._partial_interval_ms = options.partial_interval_ms
        self._lead = np.zeros(int(LEAD_SILENCE_S * SAMPLE_RATE_HZ), dtype=np.float32)
        self._agreement = PartialAgreement()
        self._partial_heard = 0

    def partial(self) -> StreamEvent | None:
        if not self._want_partials or self._open_start_ms is None:
            return None
        if self._now_ms() - self._open_start_ms < MIN_PARTIAL_SPEECH_MS:
            return None
        step_ms = EAGER_STEP_MS if not self._agreement.committed else self._partial_interval_ms
        if (self._total - self._partial_heard) * 1000 < step_ms * SAMPLE_RATE_HZ:
            return None
        self._partial_heard = self._total
        words = self._decode(self._open_start_ms - PAD_MS, self._now_ms(), beam_size=1, final=False).split()
        if not self._agreement.update(words):
            return None
        return StreamEvent("partial", self._index, " ".join(self._agreement.shown), self._open_start_ms,
                           self._now_ms(), stable_text=" ".join(self._agreement.committed))

    # --- inside --------------------------------------------------------------------------
    def _close(self, end_ms: int) -> list[StreamEvent]:
        """Finalise the open sentence [open start, end_ms] with the full beam."""
        start_ms = self._open_start_ms if self._open_start_ms is not None else end_ms
        self._open_start_ms = None
        self._agreement.reset()
        words: list[Word] = []
        text = self._decode(start_ms - PAD_MS, end_ms + PAD_MS, beam_size=self._beam_size, final=True,
                            words=words).strip()
        return self._final(text, start_ms, end_ms, words if words else None)

    def _decode(self, start_ms: int, end_ms: int, *, beam_size: int, final: bool,
                words: list[Word] | None = None) -> str:
        """Partials decode greedily without timestamp tokens (fastest); finals decode the way
        file jobs do, so a session's transcript is as good as the same audio uploaded, and
        with Whisper's own word times (into `words`, on the session clock)."""
        clip = self._clip(start_ms, end_ms)
        if clip.size < SAMPLE_RATE_HZ // 10:
            return ""
        segments, info = self._model.transcribe(
            np.concatenate([self._lead, clip]), language=self._language, beam_size=beam_size, vad_filter=False,
            condition_on_previous_text=False, without_timestamps=not final, hotwords=self._hotwords,
            word_timestamps=words is not None,
        )
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments if s.text.strip())
        if words is not None:
            clip_start_s = max(self._window_start / SAMPLE_RATE_HZ, start_ms / 1000) - LEAD_SILENCE_S
            words.extend(Word(word=w.word.strip(), start_s=round(max(0.0, clip_start_s + w.start), 3),
                              end_s=round(max(0.0, clip_start_s + w.end), 3), probability=round(w.probability, 3))
                         for s in segments for w in (s.words or []) if w.word.strip())
        if self._language is None and text:
            self._language = info.language  # one language for the session: per-sentence guesses flip
        return text
