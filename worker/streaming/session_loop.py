"""The worker's half of the relay: one live session, from `ready` to its stored job.

Knows sequence numbers, heartbeats and the job; the engine behind `StreamSession` knows the
model; neither knows the websocket or the client's protocol.
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

from shared import redis_keys
from shared import stream_messages as sm
from shared.db.models import JobStatus
from shared.schemas import JobEvent
from shared.transcript import Segment, Transcript
from worker.engines.base import SAMPLE_RATE_HZ, StreamEvent, StreamingEngine, StreamOptions
from worker.engines.live_engines import LiveEngines
from worker.services.metrics import record_first_partial
from worker.services.runtime import WorkerRuntime
from worker.services.session_end import EndContext, SessionEnding, park, reprocess_quietly, store_session_end
from worker.services.transcription import JobLease
from worker.streaming.capacity import LagGauge
from worker.streaming.recorder import SessionRecorder

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
        #: How far behind real time the session runs (the process's admission reads it).
        self.lag = LagGauge()
        self._out_channel = redis_keys.stream_session_out_channel(request.session_id)
        self._in_channel = redis_keys.stream_session_in_channel(request.session_id)
        #: Where the API announces the job's final status: a DELETE of the job ends the session.
        self._job_events_channel = redis_keys.job_events_channel(request.job_id)
        self._out_seq = 0
        #: The connection this session now serves (see shared.stream_messages).
        self._epoch = 0
        self._out_lock = threading.Lock()
        self._processed_bytes = 0
        #: When the first audio frame arrived, until the first result is timed (metrics).
        self._first_audio_s: float | None = None
        self._first_result_timed = False
        self._finals: list[StreamEvent] = []
        self._stop_heartbeat = threading.Event()
        self._resampler = (soxr.ResampleStream(request.sample_rate_hz, SAMPLE_RATE_HZ, 1, dtype="float32")
                           if request.sample_rate_hz != SAMPLE_RATE_HZ else None)

    # --- publishing ----------------------------------------------------------------------
    def _publish(self, kind: str, **fields: object) -> None:
        with self._out_lock:
            self._out_seq += 1
            header = sm.RelayHeader(kind=kind, seq=self._out_seq, fence=self.request.fence, sent_at_s=time.time(),
                                    processed_bytes=self._processed_bytes, epoch=self._epoch,
                                    **fields)  # type: ignore[arg-type]
            self.runtime.redis.publish(self._out_channel, sm.encode_frame(header))
            if kind in (sm.PARTIAL, sm.FINAL) and self._first_audio_s is not None and not self._first_result_timed:
                self._first_result_timed = True
                record_first_partial(time.monotonic() - self._first_audio_s)

    def _heartbeats(self) -> None:
        """From a thread of its own, so a long final decode never looks like a dead worker."""
        interval_s = self.settings.stream_heartbeat_interval_s
        while not self._stop_heartbeat.wait(interval_s):
            try:
                self._publish(sm.HEARTBEAT)
            except redis.RedisError:
                logger.warning("session %s: could not send a heartbeat", self.request.session_id)

    # --- the session ---------------------------------------------------------------------
    def run(self) -> None:
        request = self.request
        started_s = time.monotonic()
        pubsub = self.runtime.redis.pubsub(ignore_subscribe_messages=True)
        recorder = SessionRecorder(self.settings.data_dir, request.session_id)
        reason, error = "stopped", ""
        heartbeat = threading.Thread(target=self._heartbeats, name="stream-heartbeat", daemon=True)
        try:
            pubsub.subscribe(self._in_channel, self._job_events_channel)
            self._publish(sm.READY)
            heartbeat.start()
            options = StreamOptions(
                language=request.language, hotwords=tuple(request.hotwords), want_partials=request.want_partials,
                partial_interval_ms=self.settings.stream_partial_interval_ms, mode=request.mode,
                chunk_size=request.chunk_size, encoder_chunk_look_back=request.encoder_chunk_look_back,
                decoder_chunk_look_back=request.decoder_chunk_look_back)
            if isinstance(self.engines, LiveEngines):
                self.engine = self.engines.choose(options)
            self.runtime.jobs.transition(request.job_id, JobStatus.RUNNING, worker=self.runtime.identity,
                                         engine=self.engine.name)
            session = self.engine.open_stream(options)
            with JobLease(self.runtime, request.job_id):
                reason = self._loop(pubsub, session, recorder, started_s)
        except SessionFailed as exc:
            reason, error = exc.reason, exc.message
        except redis.RedisError as exc:
            reason, error = "aborted", f"lost the connection to Redis mid-session: {exc}"
        except Exception as exc:  # an engine bug or a database outage must not take the worker down
            logger.exception("session %s failed", request.session_id)
            reason, error = "engine_error", f"the session failed: {type(exc).__name__}: {exc}"
        finally:
            self._stop_heartbeat.set()
            with contextlib.suppress(redis.RedisError, OSError):
                pubsub.close()
        self._finalise(recorder, reason, error, started_s)

    def _loop(self, pubsub, session, recorder: SessionRecorder, started_s: float) -> str:  # type: ignore[no-untyped-def]
        expected_seq = 1
        last_heard_s = time.monotonic()
        #: When the API said its client was gone; None while a client is connected.
        detached_since_s: float | None = None
        while True:
            if self.shutdown.is_set():
                self._close_audio(session, recorder)
                raise SessionFailed("aborted", "the stream worker is shutting down; start a new session")
            message = pubsub.get_message(timeout=POLL_S)
            now_s = time.monotonic()
            if message is None:
                if detached_since_s is not None:
                    if now_s - detached_since_s > self.settings.stream_resume_window_s:
                        logger.info("session %s: not resumed within %.0f s; ending it", self.request.session_id,
                                    self.settings.stream_resume_window_s)
                        self._close_audio(session, recorder)
                        return "not_resumed"
                    continue
                if now_s - last_heard_s > self.settings.stream_api_timeout_s:
                    if self.settings.stream_resume_window_s > 0:
                        # The API process died (a crash, a deploy): its client is cut off as if
                        # its network had dropped, and may reconnect through another process.
                        detached_since_s = now_s
                        logger.warning("session %s: lost contact with its API process; holding it %.0f s for "
                                       "its client to reconnect", self.request.session_id,
                                       self.settings.stream_resume_window_s)
                        continue
                    self._close_audio(session, recorder)
                    raise SessionFailed("api_lost", "lost contact with the API holding the client's connection")
                if now_s - started_s > self.request.max_session_s + 60:
                    self._close_audio(session, recorder)
                    return "max_length"
                self._emit_partial(session)  # only when the API has nothing waiting: finals come first
                continue
            if message.get("type") != "message":
                continue
            if _channel_name(message) == self._job_events_channel:
                if JobEvent.model_validate_json(message["data"]).status == JobStatus.CANCELED.value:
                    raise SessionFailed(sm.CANCELED_REASON, "the session's job was canceled (DELETE /v1/jobs/"
                                                            f"{self.request.job_id})")
                continue
            header, payload = sm.decode_frame(message["data"])
            if header.fence != self.request.fence:
                continue
            if header.kind == sm.ATTACH and header.epoch != self._epoch:
                # A reconnected client, through whichever API process: from now on only
                # its frames count, whether or not the old connection said it was gone.
                self._epoch = header.epoch
                self.lag = LagGauge()  # another API process: another clock to measure against
                expected_seq = header.seq + 1
                detached_since_s = None
                last_heard_s = now_s
                self._publish(sm.ATTACHED, received_bytes=self._processed_bytes)
                self._replay_finals(after_index=header.index if header.index is not None else -1)
                logger.info("session %s resumed (epoch %d) at %d bytes of audio", self.request.session_id,
                            self._epoch, self._processed_bytes)
                continue
            if header.epoch != self._epoch:
                continue  # a connection the session has moved on from
            if header.seq != expected_seq:
                self._close_audio(session, recorder)
                raise SessionFailed("relay_gap", f"audio was lost between the API and the worker (expected frame "
                                                 f"{expected_seq}, got {header.seq})")
            expected_seq += 1
            last_heard_s = now_s
            # Its connection's API is alive after all (a stall, not a death): not detached,
            # unless this very frame says the client left (DETACH, below).
            detached_since_s = None
            if header.kind == sm.AUDIO:
                self.lag.frame(header.sent_at_s)
                if self._first_audio_s is None:
                    self._first_audio_s = now_s
                samples = self._to_16k(payload)
                recorder.write(samples)
                self._emit(session.accept_audio(samples))
                self._processed_bytes += len(payload)
            elif header.kind == sm.FLUSH:
                self._close_audio(session, recorder)
            elif header.kind == sm.DETACH:
                if self.settings.stream_resume_window_s <= 0:
                    self._close_audio(session, recorder)
                    return "stopped"
                detached_since_s = now_s
                logger.info("session %s: its client dropped; holding it %.0f s for a reconnect",
                            self.request.session_id, self.settings.stream_resume_window_s)
            elif header.kind == sm.STOP:
                self._close_audio(session, recorder)
                return "stopped"

    def _replay_finals(self, after_index: int) -> None:
        """The finals a reconnected client has not seen, in order: each once, since the
        client says which it has, and finals are only ever made by this thread."""
        for event in self._finals:
            if event.index > after_index:
                self._publish(sm.FINAL, text=event.text, index=event.index, start_ms=event.start_ms,
                              end_ms=event.end_ms)

    def _to_16k(self, payload: bytes) -> np.ndarray:
        samples = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return samples

    def _close_audio(self, session, recorder: SessionRecorder) -> None:  # type: ignore[no-untyped-def]
        """The audio so far is complete (a flush, the end, or the session ending for any reason):
        the resampler's tail, then the open sentence's final."""
        self._flush_16k(session, recorder)
        self._emit(session.finish())

    def _flush_16k(self, session, recorder: SessionRecorder) -> None:  # type: ignore[no-untyped-def]
        """Before a sentence is closed (a client's FLUSH or STOP, or the session ending): the resampler's
        last output, which its filter holds back until told the input ended (12-115 ms behind
        the input at 8 kHz in; 1016 samples at the end of the FunASR 8 kHz test), into the
        recording and the session. The resampler then starts over for audio after a flush."""
        if self._resampler is None:
            return
        tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._resampler.clear()
        if tail.size:
            recorder.write(tail)
            self._emit(session.accept_audio(tail))

    def _emit_partial(self, session) -> None:  # type: ignore[no-untyped-def]
        event = session.partial()
        if event is not None:
            mask = self.runtime.sensitive_words.mask_text
            text = mask(event.text)
            self._publish(sm.PARTIAL, text=text, stable_text=common_word_prefix(mask(event.stable), text),
                          index=event.index, start_ms=event.start_ms, end_ms=event.end_ms)

    def _emit(self, finals: list[StreamEvent]) -> None:
        """Store each final sentence, then tell the client: a sentence the client has seen
        survives a worker killed the next instant."""
        for event in finals:
            event = replace(event, text=self.runtime.sensitive_words.mask_text(event.text))
            self._finals.append(event)
            try:
                self.runtime.jobs.add_stream_segment(self.request.job_id, event.index, event.start_ms, event.end_ms,
                                                     event.text)
            except Exception:  # the transcript in storage still gets it at the end
                logger.warning("session %s: could not store sentence %d", self.request.session_id, event.index,
                               exc_info=True)
            self._publish(sm.FINAL, text=event.text, index=event.index, start_ms=event.start_ms, end_ms=event.end_ms)

    # --- the end -------------------------------------------------------------------------
    def _end_context(self) -> EndContext:
        return EndContext(settings=self.settings, jobs=self.runtime.jobs, storage=self.runtime.storage,
                          redis=self.runtime.redis, celery=self.celery)

    def _finalise(self, recorder: SessionRecorder, reason: str, error: str, started_s: float) -> None:
        """Store the audio and the transcript, end the job, then tell the API: a client that
        sees the end can read the finished job at once. A recording that cannot be stored is
        parked on this disk and stored later (worker.services.session_end), never deleted."""
        request = self.request
        duration_s = recorder.duration_s
        recorder.close()
        transcript = Transcript.from_segments(
            [Segment(start_s=e.start_ms / 1000, end_s=e.end_ms / 1000, text=e.text) for e in self._finals],
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
                self._publish(sm.ERROR, reason=reason, message=error)
            else:
                self._publish(sm.ENDED, reason=reason, finals=len(self._finals))
        if reprocess_now:  # after the client has its end: copying the recording takes a while
            reprocess_quietly(context, ending)
        recorder.discard()
        logger.info("session %s ended (%s): %d sentences, %.1f s of audio", request.session_id, reason,
                    len(self._finals), duration_s)


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


def _channel_name(message: dict) -> str:  # type: ignore[type-arg]
    channel = message.get("channel", b"")
    return channel.decode() if isinstance(channel, bytes) else str(channel)
