"""Live English transcription with Moonshine: fsmn-vad cuts sentences, Moonshine decodes them.

The shape of the Whisper live path (the VAD on every frame, the open sentence re-decoded for
partials, a final decode when it closes), with what Moonshine's cost allows:

- the first decode of a sentence comes as soon as it has `MIN_PARTIAL_SPEECH_MS` of speech, and
  every partial shows that decode's whole hypothesis at once (grey, may change), with the words
  two decodes agreed on as its stable part (`partial_agreement`);
- a decode costs in proportion to the clip (tens of milliseconds early in a sentence), so
  partials are paced by what the last one cost: each session spends at most
  `PARTIAL_CPU_SHARE` of a core on partials, which is what lets four sessions share a core;
- the final decodes the closed sentence once more, padded, on the whole clip;
- a sentence of 3 s or more closes at the next phrase's pause (250 ms, `PauseFinder`), where
  fsmn-vad waits for 800 ms: fluent speech rarely pauses that long, and the words after a
  pause then come as a new sentence's first partial instead of a long sentence's refresh.
  Measured on bench/streaming.py's human speech: one session's decodes cost 23 % less (shorter
  clips; the partials' pacing spends the saving on more partials under load), and
  eight sessions' first text p95 0.92 -> 0.44 and 0.57 s in runs on the same idle machine.

Partials only run when the session's loop has no audio waiting (session_loop), so a busy core
thins partials out; finals are decoded for every sentence whatever the load, on the same
clip, so they do not depend on it.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from worker.engines.base import SAMPLE_RATE_HZ, StreamEvent, StreamOptions
from worker.engines.moonshine_model import MoonshineModel, quietest_sample, without_repeated_phrase
from worker.engines.partial_agreement import PartialAgreement, normalised_word
from worker.engines.pause_finder import PAUSE, PauseFinder
from worker.engines.vad_sentences import VadSentenceSession, VadStream

#: A sentence longer than this is cut at its quietest moment of the last `CUT_SEARCH_S` and
#: finalised; the next one goes on from there. Read speech runs on for many seconds without a
#: pause the VAD ends a sentence at, and a partial's cost grows with its sentence: 8 s keeps
#: each partial decode near 0.1 s, and a caption line readable.
MAX_SENTENCE_S = 8.0
CUT_SEARCH_S = 2.0
#: A sentence this long closes at the next pause of `PAUSE_CUT_MS` (worker/engines/pause_finder.py),
#: and the next one opens `ONSET_LEAD_MS` before the speech comes back: the words after a
#: phrase's pause are a new sentence's first words, decoded first and cheaply, instead of the
#: refresh of a long partial; and the long sentence's final is decoded in the pause.
PAUSE_CUT_AFTER_S = 3.0
PAUSE_CUT_MS = 250
ONSET_LEAD_MS = 100
#: After a pause cut, while the VAD still hears speech and the pause finder has heard none come
#: back for this long, the next sentence opens where the pause cut left off. Quiet speech in noise
#: (under the loudness threshold, over the quiet one) comes back without an onset: it must still
#: be transcribed. Longer than the VAD's end of speech (800 ms), which ends a true pause first.
REOPEN_AFTER_PAUSE_MS = 1500
#: Finals are decoded with this much audio around the VAD's sentence, so word onsets and
#: endings are heard whole.
PAD_MS = 200
#: A sentence's first decode waits for this much speech: less rarely holds a whole word.
MIN_PARTIAL_SPEECH_MS = 200
#: A sentence shorter than this is no speech (it would be decoded as a word anyway).
MIN_FINAL_SPEECH_MS = 150
#: The shortest audio step between two partial decodes of a sentence.
MIN_PARTIAL_STEP_MS = 100
#: The share of one core a session's partial decodes may use: the step between two partials
#: is at least the last decode's time divided by it. The stream worker sets it from how many
#: sessions share its cores (one alone may decode back to back; four per core get half a core
#: each at most); this is the default where nothing sets it.
PARTIAL_CPU_SHARE = 0.4
#: fsmn-vad's start rule for Moonshine sessions: speech is taken as started after 100 ms of it
#: in a 150 ms window (its config says 150 in 200). Measured on bench/streaming.py's speech:
#: first text 20 ms sooner at the median, the same finals.
LIVE_VAD_START = {"window_size_ms": 150, "sil_to_speech_time_thres": 100}
#: A long sentence's partials decode only its last seconds, placed behind its stable words by
#: the last few of them (see `_hypothesis`).
TAIL_WINDOW_S = 3.5
TAIL_ANCHOR_WORDS = 4
#: Silence put after a partial's clip before it is decoded. A clip ends where the audio so far
#: ends, usually inside a word, and Moonshine holds a word back until it hears it end: the
#: first words after a speaker's onset showed only once the next word had begun. On
#: bench/streaming.py's speech fed to one session, its decode time as the clock: first text
#: p95 0.47 -> 0.33 s, and no more stuttering first guesses ("It, it, it" became "It.");
#: 100, 200 and 300 ms measured alike, 100 is the cheapest. Finals are decoded without it: their
#: clip ends in the VAD's silence already (more silence there raised their WER, measured).
PARTIAL_TRAILING_SILENCE_MS = 100


def anchored_end(anchor: list[str], words: list[str]) -> int | None:
    """Where in `words` the `anchor` words end, if they are found there in order, at least two of
    them and the last one among them; else None."""
    matcher = difflib.SequenceMatcher(a=[normalised_word(w) for w in anchor],
                                      b=[normalised_word(w) for w in words], autojunk=False)
    blocks = [block for block in matcher.get_matching_blocks() if block.size]
    if not blocks or blocks[-1].a + blocks[-1].size != len(anchor) or sum(b.size for b in blocks) < 2:
        return None
    return blocks[-1].b + blocks[-1].size


class VadStreamFactory(Protocol):
    """What opens a VAD stream per session (the process's `FsmnVadLite`)."""

    def open_stream(self) -> VadStream:
        ...


class MoonshineStreamSession(VadSentenceSession):
    """One live session over the process's shared `MoonshineModel`."""

    max_sentence_s = MAX_SENTENCE_S

    def __init__(self, model: MoonshineModel, vad: VadStream, options: StreamOptions,
                 partial_share: Callable[[], float] = lambda: PARTIAL_CPU_SHARE,
                 final_model: MoonshineModel | None = None) -> None:
        super().__init__(vad)
        self._model = model
        #: Decodes each closed sentence once (Moonshine base by default): partials want speed,
        #: the final is what the client keeps.
        self._final_model = final_model or model
        self._partial_share = partial_share
        self._want_partials = options.want_partials
        self._agreement = PartialAgreement()
        #: Sample count when the last partial decode ran, and the audio step before the next.
        self._partial_heard = 0
        self._partial_step_ms = MIN_PARTIAL_STEP_MS
        self._pauses = PauseFinder(SAMPLE_RATE_HZ, PAUSE_CUT_MS)
        #: Where the last sentence was closed at a pause while the VAD still hears speech: the
        #: next opens where the speech comes back; None once it has (or the VAD spoke).
        self._paused_at_ms: int | None = None
        #: No decode reads audio before this: it went to the sentence closed at a pause.
        self._clip_floor_ms = 0

    def _on_audio(self, samples: np.ndarray) -> list[StreamEvent]:
        """Close a long sentence at a pause, open the next where the speech comes back. Run on
        the pause finder's events, each at its own time on the stream clock, so the sentences do
        not depend on how the audio was cut into messages."""
        finals: list[StreamEvent] = []
        for kind, at_ms in self._pauses.accept(samples):
            if kind == PAUSE:
                opened_ms = self._open_start_ms
                heard_ms = at_ms + PAUSE_CUT_MS  # the pause heard so far: the final's clip ends there
                if opened_ms is not None and at_ms > opened_ms and heard_ms - opened_ms >= PAUSE_CUT_AFTER_S * 1000:
                    finals.extend(self._close(at_ms, clip_end_ms=heard_ms))
                    self._paused_at_ms = self._clip_floor_ms = heard_ms
            elif self._open_start_ms is None and self._paused_at_ms is not None:
                late = at_ms - self._paused_at_ms >= REOPEN_AFTER_PAUSE_MS  # as if the check below came first
                self._open(self._paused_at_ms if late else max(self._paused_at_ms, at_ms - ONSET_LEAD_MS))
                self._paused_at_ms = None
        if self._paused_at_ms is not None and self._now_ms() - self._paused_at_ms >= REOPEN_AFTER_PAUSE_MS:
            self._open(self._paused_at_ms)  # from where the cut left off: no audio is left out
            self._paused_at_ms = None
        return finals

    def partial(self) -> StreamEvent | None:
        if not self._want_partials or self._open_start_ms is None:
            return None
        now_ms = self._now_ms()
        if now_ms - self._open_start_ms < MIN_PARTIAL_SPEECH_MS:
            return None
        if (self._total - self._partial_heard) * 1000 < self._partial_step_ms * SAMPLE_RATE_HZ:
            return None
        self._partial_heard = self._total
        started_s = time.perf_counter()
        words = self._hypothesis(now_ms)
        cost_ms = (time.perf_counter() - started_s) * 1000
        self._partial_step_ms = max(MIN_PARTIAL_STEP_MS, int(cost_ms / self._partial_share()))
        if not self._agreement.update(words):
            return None
        return StreamEvent("partial", self._index, " ".join(self._agreement.shown), self._open_start_ms, now_ms,
                           stable_text=" ".join(self._agreement.committed))

    # --- inside --------------------------------------------------------------------------
    def _hypothesis(self, now_ms: int) -> list[str]:
        """The open sentence's words so far. Once it is long and has stable words, only its last
        `TAIL_WINDOW_S` are decoded (a partial's cost stays that of a short clip however long the
        sentence) and put behind the stable words where their last few are found again in it;
        where they are not, the whole sentence is decoded, as before it was long."""
        assert self._open_start_ms is not None
        start_ms = max(self._clip_floor_ms, self._open_start_ms - PAD_MS)
        tail_from_ms = now_ms - int(TAIL_WINDOW_S * 1000)
        committed = self._agreement.committed
        if tail_from_ms > start_ms and len(committed) >= TAIL_ANCHOR_WORDS:
            tail = self._partial_words(tail_from_ms, now_ms)
            after = anchored_end(committed[-TAIL_ANCHOR_WORDS:], tail)
            if after is not None:
                return committed + tail[after:]
        return self._partial_words(start_ms, now_ms)

    def _partial_words(self, start_ms: int, end_ms: int) -> list[str]:
        """The words of an open clip, heard to their end (`PARTIAL_TRAILING_SILENCE_MS`)."""
        clip = self._clip(start_ms, end_ms)
        silence = np.zeros(PARTIAL_TRAILING_SILENCE_MS * SAMPLE_RATE_HZ // 1000, dtype=np.float32)
        return without_repeated_phrase(self._model.decode(np.concatenate([clip, silence])).split())

    def _close(self, end_ms: int, clip_end_ms: int | None = None) -> list[StreamEvent]:
        """Finalise the open sentence; its clip runs `PAD_MS` past `end_ms`, or to `clip_end_ms`
        (a pause cut: the whole pause heard; 50 ms less and Moonshine ended a test's last
        sentence with a comma)."""
        start_ms = self._open_start_ms if self._open_start_ms is not None else end_ms
        self._open_start_ms = None
        partials_sent = bool(self._agreement.shown)
        self._agreement.reset()
        self._partial_step_ms = MIN_PARTIAL_STEP_MS
        text = ""
        if end_ms - start_ms >= MIN_FINAL_SPEECH_MS:  # else a click: Moonshine makes words of nothing
            clip_end_ms = end_ms + PAD_MS if clip_end_ms is None else clip_end_ms
            clip = self._clip(max(self._clip_floor_ms, start_ms - PAD_MS), clip_end_ms)
            # A clip cut mid-word (a Finalize, a pause cut) can make the model say it twice.
            text = " ".join(without_repeated_phrase(self._final_model.decode(clip).split()))
        if not text and partials_sent:
            # Partials went out under this index; the next sentence must not reuse it (a
            # FunASR online client would take its words as the rest of those partials).
            self._index += 1
        return self._final(text, start_ms, end_ms)

    def finish(self) -> list[StreamEvent]:
        self._paused_at_ms = None  # the VAD starts over: its next start opens the next sentence
        return super().finish()

    def _on_vad(self, start_ms: int, end_ms: int) -> list[StreamEvent]:
        if start_ms >= 0 or end_ms >= 0:  # the VAD's own start or end: a pause cut waits no more
            self._paused_at_ms = None
        return super()._on_vad(start_ms, end_ms)

    def _cut_point_ms(self) -> int:
        now_ms = self._now_ms()
        search_from_ms = now_ms - int(CUT_SEARCH_S * 1000)
        clip = self._clip(search_from_ms, now_ms)
        return search_from_ms + quietest_sample(clip, 0, clip.size) * 1000 // SAMPLE_RATE_HZ


class MoonshineStreamEngine:
    """Serves live English sessions: the process's Moonshine model and the VAD's streams."""

    name = MoonshineModel.name

    def __init__(self, model: MoonshineModel, vad: VadStreamFactory,
                 partial_share: Callable[[], float] = lambda: PARTIAL_CPU_SHARE,
                 final_model: MoonshineModel | None = None) -> None:
        """`model` decodes partials; `final_model` (default: the same) each sentence's final."""
        self._model = model
        self._final_model = final_model or model
        self._vad = vad
        self._partial_share = partial_share
        self.model_name = (model.model_name if self._final_model is model
                           else f"{model.model_name}+{self._final_model.model_name}")

    def open_stream(self, options: StreamOptions) -> MoonshineStreamSession:
        return MoonshineStreamSession(self._model, self._vad.open_stream(), options, self._partial_share,
                                      self._final_model)
