"""One live session on its worker, from `ready` to its stored job: drives the engine.

Feeds the engine's stream (a `StreamSession`, worker.engines.base) the audio the relay
(worker.streaming.relay) hands it, resampled to 16 kHz and recorded; masks and stores each
final sentence before the client sees it; and hands the session's end to
worker.services.session_end. The relay knows the channels and the API; the engine knows the
model; none of them knows the websocket or the client's protocol.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import replace

import numpy as np
import redis
import soxr
from celery import Celery

from shared import stream_messages as sm
from shared.db.models import JobStatus
from shared.transcript import Segment, Transcript
from worker.engines.base import SAMPLE_RATE_HZ, StreamEvent, StreamingEngine, StreamOptions, StreamSession
from worker.engines.live_engines import LiveEngines
from worker.services.completion import FinishContext
from worker.services.metrics import record_first_partial
from worker.services.runtime import WorkerRuntime
from worker.services.session_end import SessionEnding, park, reprocess_quietly, store_session_end
from worker.services.transcription import JobLease
from worker.streaming.capacity import LagGauge
from worker.streaming.recorder import SessionRecorder
from worker.streaming.relay import IDLE, RelayEnded, WorkerRelay
from worker.streaming.session_speakers import SessionSpeakers, SpeakersUnavailable

logger = logging.getLogger(__name__)

#: How long one wait for the API's next frame lasts; timers are checked between waits.
POLL_S = 0.02


class SessionFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SessionRunner:
    """Runs one session to its end; `run` never raises for the session's own failures."""

    def __init__(self, runtime: WorkerRuntime, engines: LiveEngines | StreamingEngine, request: sm.SessionRequest,
                 shutdown: threading.Event | None = None, celery: Celery | None = None) -> None:
        self.runtime = runtime
        #: Sends the session's webhook task; None: the reconciler's sweep sends it.
        self.celery = celery
        #: Set when the worker is asked to stop: the session ends at once, its sentences kept.
        self.shutdown = shutdown or threading.Event()
        self.settings = runtime.settings
        #: The live engines of the process; the session's own is chosen when it starts.
        self.engines = engines
        self.engine: StreamingEngine = engines  # type: ignore[assignment]
        self.request = request
        self.relay = WorkerRelay(runtime.redis, request, runtime.settings)
        #: When the first audio frame arrived, until the first result is timed (metrics).
        self._first_audio_s: float | None = None
        self._first_result_timed = False
        self._finals: list[StreamEvent] = []
        #: The speaker step, for sessions that asked for speakers (set when the session starts).
        self._speakers: SessionSpeakers | None = None
        self._final_speakers: dict[int, tuple[str, str | None, float | None]] = {}
        self._resampler = (soxr.ResampleStream(request.sample_rate_hz, SAMPLE_RATE_HZ, 1, dtype="float32")
                           if request.sample_rate_hz != SAMPLE_RATE_HZ else None)

    @property
    def lag(self) -> LagGauge:
        """How far behind real time the session runs (the process's admission reads it)."""
        return self.relay.lag

    def _result_sent(self) -> None:
        """A partial or final went out: the first one's delay after the first audio is a metric."""
        if self._first_audio_s is not None and not self._first_result_timed:
            self._first_result_timed = True
            record_first_partial(time.monotonic() - self._first_audio_s)

    # --- the session ---------------------------------------------------------------------
    def run(self) -> None:
        request = self.request
        started_s = time.monotonic()
        recorder = SessionRecorder(self.settings.data_dir, request.session_id)
        reason, error = "stopped", ""
        try:
            self.relay.open()
            options = StreamOptions(
                language=request.language, hotwords=tuple(request.hotwords), want_partials=request.want_partials,
                partial_interval_ms=self.settings.stream_partial_interval_ms, mode=request.mode,
                chunk_size=request.chunk_size, encoder_chunk_look_back=request.encoder_chunk_look_back,
                decoder_chunk_look_back=request.decoder_chunk_look_back)
            if isinstance(self.engines, LiveEngines):
                self.engine = self.engines.choose(options)
            if request.speakers:
                try:
                    self._speakers = SessionSpeakers(self.runtime, request.speakers_owner)
                except SpeakersUnavailable as exc:
                    raise SessionFailed("unavailable", str(exc)) from exc
            self.runtime.jobs.transition(request.job_id, JobStatus.RUNNING, worker=self.runtime.identity,
                                         engine=self.engine.name)
            stream = self.engine.open_stream(options)
            with JobLease(self.runtime, request.job_id):
                reason = self._loop(stream, recorder, started_s)
        except SessionFailed as exc:
            reason, error = exc.reason, exc.message
        except redis.RedisError as exc:
            reason, error = "aborted", f"lost the connection to Redis mid-session: {exc}"
        except Exception as exc:  # an engine bug or a database outage must not take the worker down
            logger.exception("session %s failed", request.session_id)
            reason, error = "engine_error", f"the session failed: {type(exc).__name__}: {exc}"
        finally:
            self.relay.close()
        self._finalise(recorder, reason, error, started_s)

    def _loop(self, stream: StreamSession, recorder: SessionRecorder, started_s: float) -> str:
        """Feed the engine what the relay hands on, until the session ends; returns why it ended."""
        while True:
            if self.shutdown.is_set():
                self._close_audio(stream, recorder)
                raise SessionFailed("aborted", "the stream worker is shutting down; start a new session")
            try:
                kind, payload = self.relay.receive(POLL_S)
            except RelayEnded as end:
                if end.close_audio:
                    self._close_audio(stream, recorder)
                if end.message:
                    raise SessionFailed(end.reason, end.message) from end
                return end.reason
            if kind == IDLE:
                if time.monotonic() - started_s > self.request.max_session_s + 60:
                    self._close_audio(stream, recorder)
                    return "max_length"
                self._emit_partial(stream)  # only when the API has nothing waiting: finals come first
            elif kind == sm.AUDIO:
                if self._first_audio_s is None:
                    self._first_audio_s = time.monotonic()
                samples = self._to_16k(payload)
                recorder.write(samples)
                self._hear(samples)
                self._emit(stream.accept_audio(samples))
                self.relay.processed_bytes += len(payload)
            elif kind == sm.FLUSH:
                self._close_audio(stream, recorder)

    def _to_16k(self, payload: bytes) -> np.ndarray:
        samples = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return samples

    def _close_audio(self, stream: StreamSession, recorder: SessionRecorder) -> None:
        """The audio so far is complete (a flush, the end, or the session ending for any reason):
        the resampler's tail, then the open sentence's final."""
        self._flush_16k(stream, recorder)
        self._emit(stream.finish())

    def _flush_16k(self, stream: StreamSession, recorder: SessionRecorder) -> None:
        """Before a sentence is closed (a client's FLUSH or STOP, or the session ending): the resampler's
        last output, which its filter holds back until told the input ended (12-115 ms behind
        the input at 8 kHz in; 1016 samples at the end of the FunASR 8 kHz test), into the
        recording and the engine's stream. The resampler then starts over for audio after a flush."""
        if self._resampler is None:
            return
        tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._resampler.clear()
        if tail.size:
            recorder.write(tail)
            self._hear(tail)
            self._emit(stream.accept_audio(tail))

    def _hear(self, samples: np.ndarray) -> None:
        """The audio the engine gets, kept for the speaker step (sessions that asked for it)."""
        if self._speakers is not None:
            self._speakers.audio.append(samples)

    def _emit_partial(self, stream: StreamSession) -> None:
        event = stream.partial()
        if event is not None:
            mask = self.runtime.sensitive_words.mask_text
            text = mask(event.text)
            self.relay.publish(sm.PARTIAL, text=text, stable_text=common_word_prefix(mask(event.stable), text),
                               index=event.index, start_ms=event.start_ms, end_ms=event.end_ms)
            self._result_sent()

    def _emit(self, finals: list[StreamEvent]) -> None:
        """Store each final sentence, then tell the client: a sentence the client has seen
        survives a worker killed the next instant."""
        for event in finals:
            mask = self.runtime.sensitive_words.mask_text
            event = replace(event, text=mask(event.text),
                            words=tuple(word.model_copy(update={"word": mask(word.word)}) for word in event.words))
            self._finals.append(event)
            speaker: dict[str, object] = {}
            if self._speakers is not None:
                label = self._speakers.label(event.start_ms, event.end_ms)
                self._final_speakers[event.index] = (label.label, label.name, label.similarity)
                speaker = {"speaker": label.label, "speaker_name": label.name, "speaker_similarity": label.similarity}
            try:
                self.runtime.jobs.add_stream_segment(self.request.job_id, event.index, event.start_ms, event.end_ms,
                                                     event.text, self._segment_of(event))
            except Exception:  # the transcript in storage still gets it at the end
                logger.warning("session %s: could not store sentence %d", self.request.session_id, event.index,
                               exc_info=True)
            self.relay.publish_final(event.index, event.text, event.start_ms, event.end_ms,
                                     words=[(word.word, round(word.start_s * 1000), round(word.end_s * 1000))
                                            for word in event.words], **speaker)
            self._result_sent()

    def _segment_of(self, event: StreamEvent) -> Segment:
        """A final as the stored transcript keeps it: its words, and its speaker as the final
        said it (labels never change)."""
        speaker: dict[str, object] = {}
        if self._speakers is not None and event.index in self._final_speakers:
            label, name, similarity = self._final_speakers[event.index]
            speaker = {"speaker": self._speakers.numbers[label], "speaker_name": name,
                       "speaker_similarity": similarity}
        return Segment(start_s=event.start_ms / 1000, end_s=event.end_ms / 1000, text=event.text,
                       words=list(event.words), **speaker)

    # --- the end -------------------------------------------------------------------------
    def _end_context(self) -> FinishContext:
        return FinishContext.of(self.runtime, self.celery)

    def _finalise(self, recorder: SessionRecorder, reason: str, error: str, started_s: float) -> None:
        """Store the audio and the transcript, end the job, then tell the API: a client that
        sees the end can read the finished job at once. A recording that cannot be stored is
        parked on this disk and stored later (worker.services.session_end), never deleted."""
        request = self.request
        duration_s = recorder.duration_s
        recorder.close()
        transcript = Transcript.from_segments(
            [self._segment_of(event) for event in self._finals],
            language=request.language, duration_s=duration_s, engine=self.engine.name,
            model=self.engine.model_name)
        ending = SessionEnding(
            job_id=request.job_id, session_id=request.session_id,
            status=(JobStatus.FAILED if error else JobStatus.SUCCEEDED).value, error=error,
            transcript_json=transcript.model_dump_json(), duration_s=duration_s,
            processing_s=time.monotonic() - started_s, reprocess=request.reprocess,
            hotwords=list(request.hotwords))
        context = self._end_context()
        reprocess_now = False
        try:
            reprocess_now = store_session_end(context, ending, recorder.path)
        except Exception:
            logger.exception("session %s: could not store its job", request.session_id)
            try:
                park(self.settings, ending, recorder.path)
            except Exception:  # the disk itself failed: the file stays where it is, and says so
                logger.exception("session %s: could not park its recording %s either", request.session_id,
                                 recorder.path)
                recorder.keep()
        with contextlib.suppress(redis.RedisError):
            if error:
                self.relay.publish(sm.ERROR, reason=reason, message=error)
            else:
                self.relay.publish(sm.ENDED, reason=reason, finals=len(self._finals))
        if reprocess_now:  # after the client has its end: copying the recording takes a while
            reprocess_quietly(context, ending)
        recorder.discard()
        logger.info("session %s ended (%s): %d sentences, %.1f s of audio", request.session_id, reason,
                    len(self._finals), duration_s)
        if self._speakers is not None and self._speakers.costs_s:
            logger.info("session %s: speaker step p95 %.0f ms over %d finals", request.session_id,
                        float(np.percentile(self._speakers.costs_s, 95)) * 1000, len(self._speakers.costs_s))


def common_word_prefix(stable: str, text: str) -> str:
    """The words `stable` and `text` start with alike: masking each on its own can split a
    sensitive phrase that straddles the stable boundary, and the stable part must stay the
    beginning of the text."""
    common = []
    for stable_word, word in zip(stable.split(), text.split(), strict=False):
        if stable_word != word:
            break
        common.append(word)
    return " ".join(common)

