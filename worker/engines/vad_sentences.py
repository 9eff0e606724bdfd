"""The part every live engine shares: the VAD cuts the stream into sentences on the session's
clock, and a window keeps just the audio an open sentence can still need.

An engine subclasses `VadSentenceSession` for what it decodes: `_close` finalises a sentence,
`partial` decodes the open one, `_keep_floor_sample` says how far back its decodes reach.
The clock is kept here once because it is easy to get wrong: FunASR's VAD starts its own
clock over at 0 after every flush (a client's Finalize), so its times are moved onto the
session's, which runs on.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from shared.transcript import Word
from worker.engines.base import SAMPLE_RATE_HZ, StreamEvent
from worker.engines.sentence_case import continued_sentence
from worker.engines.word_timing import align_words

#: Audio kept before the speech start the VAD reports (its start decision looks back).
PREROLL_MS = 1000
#: Words are looked for this far around the VAD's sentence (its start looks back, its end
#: comes after the trailing silence it waited for).
ALIGN_PAD_MS = 200


class VadStream(Protocol):
    def accept(self, samples: np.ndarray, is_final: bool = False) -> list[tuple[int, int]]:
        """(start_ms, end_ms) events, -1 for "not in this event"."""
        ...


class VadSentenceSession:
    """A live session's sentences as the VAD finds them, and the audio window behind them."""

    #: A sentence longer than this is cut and finalised (set by each engine).
    max_sentence_s: float = 25.0

    def __init__(self, vad: VadStream) -> None:
        self._vad = vad
        self._window = np.zeros(0, dtype=np.float32)
        #: Absolute sample index of `_window[0]`.
        self._window_start = 0
        self._total = 0
        #: Where the VAD's clock starts: it starts over at 0 after each flush (`finish`).
        self._vad_origin_ms = 0
        self._open_start_ms: int | None = None
        self._index = 0
        #: The last final's text: a sentence it did not end goes on in the next one.
        self._previous_final_text = ""

    # --- public --------------------------------------------------------------------------
    def accept_audio(self, samples: np.ndarray) -> list[StreamEvent]:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._window = np.concatenate([self._window, samples])
        self._total += samples.size
        finals = self._on_audio(samples)
        for start_ms, end_ms in self._vad.accept(samples):
            finals.extend(self._on_vad(*self._from_vad_clock(start_ms, end_ms)))
        if self._open_start_ms is not None and self._now_ms() - self._open_start_ms >= self.max_sentence_s * 1000:
            cut_ms = self._cut_point_ms()
            finals.extend(self._close(cut_ms))
            self._open(cut_ms)
        self._trim()
        return finals

    def finish(self) -> list[StreamEvent]:
        """Close the open sentence now. The session may go on afterwards (a client's
        Finalize): the VAD starts over, its clock from here."""
        finals: list[StreamEvent] = []
        for start_ms, end_ms in self._vad.accept(np.zeros(0, dtype=np.float32), is_final=True):
            finals.extend(self._on_vad(*self._from_vad_clock(start_ms, end_ms)))
        if self._open_start_ms is not None:
            finals.extend(self._close(self._now_ms()))
        self._vad_origin_ms = self._now_ms()
        return finals

    # --- for the engines -----------------------------------------------------------------
    def _on_audio(self, samples: np.ndarray) -> list[StreamEvent]:
        """New audio, already in the window, before the VAD hears it: an engine that cuts
        sentences by other signs than the VAD's does it here (default: nothing)."""
        return []

    def _close(self, end_ms: int) -> list[StreamEvent]:
        """Finalise the open sentence [open start, end_ms]; it is no longer open afterwards."""
        raise NotImplementedError

    def _open(self, start_ms: int) -> None:
        self._open_start_ms = max(0, start_ms)

    def _keep_floor_sample(self) -> int:
        """The earliest sample the open sentence's decodes may still read: by default its start
        less the pre-roll (engines that decode the whole open sentence)."""
        assert self._open_start_ms is not None
        return (self._open_start_ms - PREROLL_MS) * SAMPLE_RATE_HZ // 1000

    def _cut_point_ms(self) -> int:
        """Where a sentence that grew too long is cut: now, unless an engine finds a better place
        (the audio after the cut stays in the window and opens the next sentence)."""
        return self._now_ms()

    def _final(self, text: str, start_ms: int, end_ms: int, words: list[Word] | None = None) -> list[StreamEvent]:
        """The final of the sentence just closed, numbered in order; no text, no final. Its
        words: the engine's own times where it has them, else aligned on the sentence's audio
        (still in the window: the sentence closed before this call trims it)."""
        if not text:
            return []
        text = continued_sentence(self._previous_final_text, text)
        self._previous_final_text = text
        if words and words[0].word.strip().lower() == text.split(" ", 1)[0].lower():
            words = [words[0].model_copy(update={"word": words[0].word.replace(words[0].word.strip(),
                                                                               text.split(" ", 1)[0], 1)}),
                     *words[1:]]
        if words is None:
            clip_start_ms = max(self._window_start * 1000 // SAMPLE_RATE_HZ, start_ms - ALIGN_PAD_MS)
            words = align_words(text, self._clip(clip_start_ms, end_ms + ALIGN_PAD_MS), clip_start_ms,
                                max(0, start_ms - ALIGN_PAD_MS), end_ms + ALIGN_PAD_MS)
        event = StreamEvent("final", self._index, text, max(0, start_ms), end_ms, words=tuple(words))
        self._index += 1
        return [event]

    def _now_ms(self) -> int:
        return self._total * 1000 // SAMPLE_RATE_HZ

    def _clip(self, start_ms: int, end_ms: int) -> np.ndarray:
        start = max(self._window_start, start_ms * SAMPLE_RATE_HZ // 1000) - self._window_start
        end = min(self._total, end_ms * SAMPLE_RATE_HZ // 1000) - self._window_start
        return self._window[max(0, start):max(0, end)]

    # --- inside --------------------------------------------------------------------------
    def _from_vad_clock(self, start_ms: int, end_ms: int) -> tuple[int, int]:
        """FunASR's events use -1 for "not in this event"; the rest move to the session clock."""
        return (start_ms + self._vad_origin_ms if start_ms >= 0 else -1,
                end_ms + self._vad_origin_ms if end_ms >= 0 else -1)

    def _on_vad(self, start_ms: int, end_ms: int) -> list[StreamEvent]:
        if start_ms >= 0 and self._open_start_ms is None:
            self._open(start_ms)
        if end_ms >= 0 and self._open_start_ms is not None:
            return self._close(end_ms)
        return []

    def _trim(self) -> None:
        """Forget audio no decode can need again: everything before the pre-roll, and, while
        a sentence is open, before what its decodes may read."""
        keep_from = (self._now_ms() - PREROLL_MS) * SAMPLE_RATE_HZ // 1000
        if self._open_start_ms is not None:
            keep_from = min(keep_from, self._keep_floor_sample())
        keep_from = max(self._window_start, keep_from)
        drop = keep_from - self._window_start
        if drop > 0:
            self._window = self._window[drop:].copy()
            self._window_start = keep_from
