"""The session loop's speaker step: the session's recent audio, and who said each final.

Asked for with the start option `speakers`. The speaker model is the worker's own (the file
engine's, which voiceprints are made with); the key's voiceprints of that model are read once
when the session starts. The labelling itself is worker.engines.live_speakers.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from shared.db.speakers import SpeakerRepository
from shared.engines_catalog import engine_named
from worker.engines.base import SAMPLE_RATE_HZ
from worker.engines.live_speakers import ANONYMOUS_PREFIX, MAX_ANONYMOUS_SPEAKERS, LiveSpeaker, LiveSpeakerLabeler
from worker.engines.speaker_embeddings import use_live_threads
from worker.engines.voiceprints import RESEMBLYZER_MODEL
from worker.services.runtime import WorkerRuntime
from worker.services.speakers import speaker_model_of

logger = logging.getLogger(__name__)

#: Audio kept for the speaker step: a final comes a VAD pause (and, on a busy worker, some lag)
#: after its sentence ended, and at most the sentence's last seconds are embedded.
KEEP_S = 30.0


_warmed_up: set[int] = set()


def _warm_up(engine: object) -> None:
    """The embedder's first call costs seconds (torch sets itself up): spent once per process,
    when its first session with speakers starts, not on that session's first final."""
    if id(engine) not in _warmed_up:
        engine.embed_speaker(np.zeros(SAMPLE_RATE_HZ, dtype=np.float32))  # type: ignore[attr-defined]
        _warmed_up.add(id(engine))


class SpeakersUnavailable(Exception):
    """Speakers were asked for, and this worker cannot name them now; the message says why."""


class RecentAudio:
    """The last `KEEP_S` of the session's 16 kHz audio, on the session's clock."""

    def __init__(self, keep_s: float = KEEP_S) -> None:
        self._keep = int(keep_s * SAMPLE_RATE_HZ)
        self._buffer = np.zeros(0, dtype=np.float32)
        #: Samples of the session before `_buffer[0]`.
        self._dropped = 0

    def append(self, samples: np.ndarray) -> None:
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        extra = self._buffer.size - self._keep
        if extra > 0:
            self._buffer = self._buffer[extra:].copy()
            self._dropped += extra

    def clip(self, start_ms: int, end_ms: int) -> np.ndarray:
        start = max(0, start_ms * SAMPLE_RATE_HZ // 1000 - self._dropped)
        end = max(0, end_ms * SAMPLE_RATE_HZ // 1000 - self._dropped)
        return self._buffer[start:end]


class SessionSpeakers:
    """One session's speaker step; building it raises `SpeakersUnavailable` with a reason."""

    def __init__(self, runtime: WorkerRuntime, owner: str) -> None:
        engine = runtime.engine
        model = speaker_model_of(engine)
        if model is None:
            raise SpeakersUnavailable("speaker labels are not available on this server: "
                                      + engine_named(engine.name).no_speaker_model_reason())
        if not getattr(engine, "speaker_model_ready", True):
            starter = getattr(engine, "start_loading_speaker_model", None)
            if starter is not None:
                starter()
            raise SpeakersUnavailable("the speaker model is still loading on this stream worker; start the session "
                                      "again in a few seconds (ODDASR_PRELOAD_SPEAKER_MODEL=true loads it at start)")
        if model == RESEMBLYZER_MODEL:  # the Whisper engine's: nothing else here runs torch
            use_live_threads()
        _warm_up(engine)
        voiceprints = SpeakerRepository(runtime.jobs.session_factory).voiceprints(owner, model)
        self.labeler = LiveSpeakerLabeler(engine.embed_speaker,  # type: ignore[attr-defined]
                                          [(v.name, v.embedding) for v in voiceprints],
                                          runtime.settings.live_speaker_match_threshold)
        self.audio = RecentAudio()
        #: Each final's speaker step, in seconds (the session logs their p95 at its end).
        self.costs_s: list[float] = []
        #: Each label's number in the stored transcript (`Segment.speaker`): `Speaker N` is N - 1, as
        #: the renderers number them; enrolled names follow all anonymous numbers.
        self.numbers: dict[str, int] = {}

    def label(self, start_ms: int, end_ms: int) -> LiveSpeaker:
        started_s = time.perf_counter()
        speaker = self.labeler.label(self.audio.clip(start_ms, end_ms))
        self.costs_s.append(time.perf_counter() - started_s)
        del self.costs_s[:-1000]
        if speaker.label not in self.numbers:
            anonymous = speaker.name is None and speaker.label.startswith(ANONYMOUS_PREFIX)
            self.numbers[speaker.label] = (int(speaker.label[len(ANONYMOUS_PREFIX):]) - 1 if anonymous
                                           else MAX_ANONYMOUS_SPEAKERS + len(self.numbers))
        return speaker
