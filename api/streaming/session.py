"""One websocket session, from its first frame to its close.

Glue between three parts that know nothing of each other: the client's wire protocol (an
adapter), the relay to the pinned worker, and the job that records the session. Runs in one
gevent greenlet for the client's frames plus one that forwards the worker's results.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import secrets
import threading
import time
import uuid
from dataclasses import dataclass

import redis
from simple_websocket import ConnectionClosed
from sqlalchemy.exc import SQLAlchemyError

from api.auth import MISSING_KEY_MESSAGE, authenticate_token
from api.deps import ApiDeps
from api.options import check_hotwords, check_language, check_supported, parse_callback_url, parse_language
from api.principal import Principal
from api.streaming import jobs as stream_jobs
from api.streaming import vocabulary as v
from api.streaming.before_start import BeforeStart
from api.streaming.framing import AudioFramer
from api.streaming.protocols import detect
from api.streaming.relay import RelayClient, RelayError, WorkerEvent, wait_for_slot
from api.streaming.socket_gate import GatedSocket
from shared import redis_keys, reprocess
from shared import stream_messages as sm
from shared.db.repository import STREAM_MODE
from shared.engines_catalog import live_language_refusal
from shared.errors import BadRequestError, NotSupportedError, OddAsrError, UnauthorizedError
from shared.schemas import JobOptions
from shared.stream_slots import release_slot, slot_of_session

logger = logging.getLogger(__name__)

#: A live session is charged against its key's daily audio as it goes, every this much audio,
#: and ended (its sentences kept) once the allowance is used up.
LIVE_CHARGE_INTERVAL_S = 10.0
#: How often the client loop wakes to check its timers.
RECEIVE_POLL_S = 0.25
#: After the end of a session, how long the worker has to send its last results.
END_TIMEOUT_S = 60.0
#: Relay error kinds -> protocol error kinds.
_RELAY_ERROR_KINDS = {"worker_lost": v.WORKER_LOST, "worker_unready": v.WORKER_LOST, "relay_gap": v.INTERNAL,
                      "redis_lost": v.UNAVAILABLE, "superseded": v.WORKER_LOST}


@dataclass
class _Outcome:
    ended: bool = False
    error_kind: str = ""
    error_message: str = ""


class StreamSession:
    def __init__(self, ws, deps: ApiDeps, default_protocol: str,  # type: ignore[no-untyped-def]
                 principal: Principal | None = None, resume_session_id: str = "",
                 gate: GatedSocket | None = None) -> None:
        self.ws = ws
        self.principal = principal
        #: Until the session starts, a socket may make the API hold very little.
        self._before_start = BeforeStart(ws, gate, deps.settings, authenticated=principal is not None)
        #: The `session` query parameter: the session a reconnecting client goes on with.
        self.resume_session_id = resume_session_id
        #: The index of the last final sentence sent to this client (-1: none yet).
        self._last_final_sent = -1
        #: The worker said the session ended (or the relay to it failed): nothing to tell it.
        self._worker_ended = False
        #: Sending to the client failed: it is gone.
        self._lost_client = False
        #: A newer connection took the session over (a resume): not this connection's to fail.
        self._superseded = False
        self.deps = deps
        self.settings = deps.settings
        self.default_protocol = default_protocol
        self.adapter: v.WireProtocol | None = None
        self._send_lock = threading.Lock()
        self._done = threading.Event()
        self._outcome = _Outcome()
        self._stop_ack = False
        self._stopping = False
        #: 16-bit PCM sent to the worker, at the client's sample rate: the session's audio.
        self._relayed_bytes = 0
        #: Of it, what the key has been charged for (daily audio), and who that key is.
        self._charged_bytes = 0
        self._principal: Principal | None = None
        #: Why the server ended a session that ended well (kind, message): the key's daily
        #: audio used up, or KeepAlives without audio for too long.
        self._server_end: tuple[str, str] | None = None
        #: How many finals the whole session made (the worker says so at the end).
        self._finals_total: int | None = None
        self._sample_rate_hz = 16000

    # --- sending -------------------------------------------------------------------------
    def _send(self, frames: list[str]) -> None:
        with self._send_lock:
            for frame in frames:
                self.ws.send(frame)

    def _refuse(self, kind: str, message: str) -> None:
        """Tell the client why in its own protocol, then close: never a silent close."""
        adapter = self.adapter or detect(None, self.default_protocol)
        logger.info("stream session refused (%s): %s", kind, message)
        with contextlib.suppress(ConnectionClosed, OSError):
            self._send(adapter.on_error(kind, message))
            self.ws.close(1000)

    # --- the session ---------------------------------------------------------------------
    def run(self) -> None:
        self._before_start.tighten()
        try:
            first_text, early_audio = self._before_start.first_frames()
        except v.ProtocolError as exc:
            self._refuse(exc.kind, exc.message)
            return
        self.adapter = detect(first_text, self.default_protocol)
        try:
            start = self.adapter.parse_start(first_text)
        except v.ProtocolError as exc:
            self._refuse(exc.kind, exc.message)
            return
        if self.settings.disable_stream:
            self._refuse(v.DISABLED, "live streaming is turned off on this server (disable_stream)")
            return
        self._sample_rate_hz = start.sample_rate_hz
        try:
            principal = self._authenticate(start, resuming=bool(start.task_id or self.resume_session_id))
        except OddAsrError as exc:
            self._refuse(v.UNAUTHORIZED if exc.http_status == 401 else v.LIMITED, exc.message)
            return
        except SQLAlchemyError:  # the key table is unreachable: say so in the client's protocol
            logger.warning("stream session: the key database is unavailable", exc_info=True)
            self._refuse(v.UNAVAILABLE, "the job database is unavailable; try again shortly")
            return
        self._principal = principal
        resume_id = start.task_id or self.resume_session_id
        if resume_id:
            self._resume(start, principal, resume_id)
            return
        try:  # the same checks as every HTTP endpoint, before a worker is held
            start.language = parse_language(start.language)
            check_language(start.language, self.settings)
            start.hotwords = check_hotwords(start.hotwords)
            if refusal := live_language_refusal(self.settings.stream_engine, start.language):
                raise BadRequestError(refusal)
            if start.callback_url:
                start.callback_url = parse_callback_url({"callback_url": start.callback_url}, self.settings)
            if start.reprocess == reprocess.DIARIZE:
                check_supported(JobOptions(diarize=True), self.settings)
        except (BadRequestError, NotSupportedError) as exc:
            self._refuse(v.BAD_REQUEST, exc.message)
            return
        session_id = uuid.uuid4().hex
        try:
            claim = wait_for_slot(self.deps.redis, session_id, self.settings.stream_slot_wait_s)
        except redis.RedisError as exc:
            self._refuse(v.UNAVAILABLE, f"the stream relay (Redis) is unavailable: {exc}")
            return
        if claim is None:
            self._refuse(v.BUSY, f"every stream worker is busy (waited {self.settings.stream_slot_wait_s:.0f} s); "
                                 "try again in a few seconds")
            return
        try:
            with self.deps.limiter.in_flight_place(principal, live_session=True):
                stream_jobs.create(self.deps, session_id, start, self.adapter.name, claim.worker_id,
                                   principal.key_id)
        except OddAsrError as exc:
            with contextlib.suppress(redis.RedisError):
                release_slot(self.deps.redis, claim.worker_id, claim.fence)
            self._refuse(v.LIMITED if exc.http_status == 429 else v.UNAVAILABLE, exc.message)
            return
        except Exception:
            logger.exception("could not record stream session %s", session_id)
            with contextlib.suppress(redis.RedisError):
                release_slot(self.deps.redis, claim.worker_id, claim.fence)
            self._refuse(v.UNAVAILABLE, "the job database is unavailable; try again shortly")
            return
        relay = RelayClient(self.deps.redis, session_id, claim,
                            heartbeat_interval_s=self.settings.stream_heartbeat_interval_s,
                            worker_timeout_s=self.settings.stream_worker_timeout_s,
                            audio_bytes_per_s=2 * self._sample_rate_hz,
                            max_backlog_s=self.settings.stream_max_backlog_s)
        try:
            self._relay_session(relay, session_id, start, early_audio)
        finally:
            relay.close()
            self._charge_audio()

    def _authenticate(self, start: v.StartCommand, *, resuming: bool) -> Principal:
        """The caller: known from the upgrade request, or named by the start message's
        `token` (OddASR's clients carry their key there); its limits apply as to any job."""
        principal = self.principal
        if principal is None:
            if not start.token:
                raise UnauthorizedError(MISSING_KEY_MESSAGE + "; a websocket may also send it as the 'api_key'"
                                        " query parameter, the OddASR start message's 'token' or the FunASR"
                                        " config frame's 'api_key'")
            principal = authenticate_token(start.token)
            self.deps.limiter.check_request_rate(principal)
        if not resuming:  # a resumed session is already in flight, and charged when it ends
            self.deps.limiter.check_in_flight(principal)
            self.deps.limiter.check_live_sessions(principal)
            self.deps.limiter.check_audio_left(principal)
        return principal

    def _relay_session(self, relay: RelayClient, session_id: str, start: v.StartCommand,
                       early_audio: list[bytes]) -> None:
        assert self.adapter is not None
        request = sm.SessionRequest(
            session_id=session_id, job_id=session_id, fence=relay.claim.fence,
            expires_at_s=time.time() + 3.0, sample_rate_hz=start.sample_rate_hz, language=start.language,
            hotwords=start.hotwords, want_partials=start.want_partials, protocol=self.adapter.name,
            max_session_s=self.settings.stream_max_session_s, reprocess=start.reprocess, mode=start.mode,
            chunk_size=start.chunk_size, encoder_chunk_look_back=start.encoder_chunk_look_back,
            decoder_chunk_look_back=start.decoder_chunk_look_back,
        )
        try:
            relay.start(request)
        except (RelayError, redis.RedisError) as exc:
            message = exc.message if isinstance(exc, RelayError) else f"the stream relay failed: {exc}"
            stream_jobs.fail(self.deps, session_id, message)
            self._refuse(v.WORKER_LOST, message)
            return
        logger.info("stream session %s (%s) pinned to %s", session_id, self.adapter.name, relay.claim.worker_id)
        self._send(self.adapter.on_started(session_id))
        self._serve(relay, session_id, early_audio, start.stop_at_once)

    def _allowance_spent_message(self, session_id: str) -> str | None:
        """Why the session must end now, when its key has no audio left today; else None."""
        if self._principal is None or self.deps.limiter.has_audio_left(self._principal):
            return None
        return (f"key {self._principal.key_id} has used its {self._principal.audio_seconds_per_day} audio seconds "
                f"for today; the session was ended and its sentences are saved in job {session_id}")

    def _serve(self, relay: RelayClient, session_id: str, early_audio: list[bytes],
               stop_at_once: v.StopCommand | None = None, end_at_once: str | None = None) -> None:
        """Move audio in and results out until the session ends or its client goes."""
        self._before_start.relax()
        forwarder = threading.Thread(target=self._forward_results, args=(relay,), daemon=True)
        forwarder.start()
        framer = AudioFramer()
        try:
            for frame in early_audio:
                self._relay_audio(relay, framer, frame)
            if stop_at_once is not None:
                self._stop(relay, ack=stop_at_once.ack)
            if end_at_once is not None:
                self._end_by_server(relay, v.LIMITED, end_at_once)
            self._client_loop(relay, framer)
        except ConnectionClosed as exc:
            self._client_gone(relay, session_id, getattr(exc, "reason", None))
            return
        except v.ProtocolError as exc:
            self._outcome = _Outcome(error_kind=exc.kind, error_message=exc.message)
            with contextlib.suppress(redis.RedisError):
                relay.send(sm.STOP)
            self._done.set()
        except redis.RedisError as exc:
            self._outcome = _Outcome(error_kind=v.UNAVAILABLE, error_message=f"lost the stream relay (Redis): {exc}")
            self._done.set()
        if self._lost_client:
            self._client_gone(relay, session_id, None)
            return
        self._finish(session_id)

    def _client_gone(self, relay: RelayClient, session_id: str, close_code: int | None) -> None:
        """The client left before the end. A clean close (1000, 1001) ends the session: the
        worker transcribes what it has and stores the job. A dropped connection leaves the
        session to its worker for the resume window, so the client can reconnect and go on."""
        if self._worker_ended:
            return
        resumable = self.settings.stream_resume_window_s > 0 and close_code not in (1000, 1001) \
            and not self._stopping
        try:
            if resumable:
                self.deps.redis.set(redis_keys.stream_resume_key(session_id),
                                    json.dumps({"last_final_sent": self._last_final_sent}),
                                    ex=int(self.settings.stream_resume_window_s) + 10)
            relay.send(sm.DETACH if resumable else sm.STOP)
        except redis.RedisError:
            logger.warning("stream session %s: could not tell the worker its client left", session_id)
            return
        logger.info("stream session %s: the client %s", session_id,
                    f"dropped; its worker holds the session {self.settings.stream_resume_window_s:.0f} s for a "
                    "reconnect" if resumable else "went away; its worker finishes the job")

    def _resume(self, start: v.StartCommand, principal: Principal, session_id: str) -> None:
        """A client reconnecting to its session: find the worker that holds it, take the
        session over, tell the client how much audio the server has, send it the finals it
        missed, and go on as before."""
        assert self.adapter is not None
        try:
            job = self.deps.jobs.find(session_id, principal.owner_filter) if len(session_id) <= 64 else None
            if job is None or job.mode != STREAM_MODE or job.status != "running":
                self._refuse(*stream_jobs.why_not_continue(self.deps, session_id, principal.owner_filter))
                return
        except SQLAlchemyError:
            logger.warning("stream session %s: the job database is unavailable", session_id, exc_info=True)
            self._refuse(v.UNAVAILABLE, "the job database is unavailable; try again shortly")
            return
        try:
            claim = slot_of_session(self.deps.redis, session_id)
            stored = self.deps.redis.get(redis_keys.stream_resume_key(session_id))
        except redis.RedisError as exc:
            self._refuse(v.UNAVAILABLE, f"the stream relay (Redis) is unavailable: {exc}")
            return
        if claim is None:
            self._refuse(v.BAD_REQUEST, f"session {session_id} has ended and cannot be continued; start a new one")
            return
        after_index = start.last_final_index
        if after_index is None:  # the client does not say: what its last connection was sent
            after_index = int(json.loads(stored)["last_final_sent"]) if stored else -1
        self._sample_rate_hz = int(job.options.get("sample_rate_hz") or start.sample_rate_hz)
        relay = RelayClient(self.deps.redis, session_id, claim,
                            heartbeat_interval_s=self.settings.stream_heartbeat_interval_s,
                            worker_timeout_s=self.settings.stream_worker_timeout_s,
                            audio_bytes_per_s=2 * self._sample_rate_hz,
                            max_backlog_s=self.settings.stream_max_backlog_s, epoch=secrets.randbelow(2**31 - 1) + 1)
        try:
            try:
                self._relayed_bytes = self._charged_bytes = relay.attach(after_index)
            except (RelayError, redis.RedisError) as exc:
                self._refuse(v.WORKER_LOST, f"session {session_id} could not be resumed: "
                                            f"{exc.message if isinstance(exc, RelayError) else exc}")
                return
            self._last_final_sent = after_index
            self._charged_bytes = self._relayed_bytes  # the earlier connections paid for theirs
            logger.info("stream session %s resumed at %d bytes, after final %d", session_id, self._relayed_bytes,
                        after_index)
            self._send(self.adapter.on_started(session_id, resumed_bytes=self._relayed_bytes))
            # A client that reconnects every few seconds never reaches the allowance check its
            # connections make as their audio adds up: the key's day is checked at each resume.
            self._serve(relay, session_id, [], end_at_once=self._allowance_spent_message(session_id))
        finally:
            relay.close()
            self._charge_audio()

    def _relay_audio(self, relay: RelayClient, framer: AudioFramer, frame: bytes) -> None:
        if len(frame) > self.settings.stream_max_frame_bytes:
            raise v.ProtocolError(v.FRAME_TOO_LARGE, f"an audio frame of {len(frame)} bytes is larger than the "
                                                     f"limit of {self.settings.stream_max_frame_bytes} bytes")
        pcm = framer.push(frame)
        if not pcm:
            return
        received_at_s = time.time()
        while not relay.wait_for_credit(timeout_s=RECEIVE_POLL_S):
            if self._done.is_set():
                return
        relay.send(sm.AUDIO, pcm, received_at_s=received_at_s)
        self._relayed_bytes += len(pcm)
        if self._relayed_bytes - self._charged_bytes >= LIVE_CHARGE_INTERVAL_S * 2 * self._sample_rate_hz:
            self._charge_audio()
            if not self._stopping and (spent := self._allowance_spent_message(relay.session_id)):
                self._end_by_server(relay, v.LIMITED, spent)

    def _charge_audio(self) -> None:
        """Charge the key for the audio relayed since the last charge."""
        if self._principal is None or self._relayed_bytes <= self._charged_bytes:
            return
        seconds = (self._relayed_bytes - self._charged_bytes) / (2 * self._sample_rate_hz)
        self._charged_bytes = self._relayed_bytes
        self.deps.limiter.record_audio(self._principal, seconds)

    def _client_loop(self, relay: RelayClient, framer: AudioFramer) -> None:
        """Only audio keeps a session going: a KeepAlive bridges silence up to
        `stream_keepalive_max_s`, and text the protocol ignores resets no timer at all."""
        assert self.adapter is not None
        started_s = last_audio_s = last_alive_s = time.monotonic()
        while not self._done.is_set():
            frame = self.ws.receive(timeout=RECEIVE_POLL_S)
            now_s = time.monotonic()
            if frame is None:
                if not self.ws.connected:
                    raise ConnectionClosed(self.ws.close_reason, self.ws.close_message)
            elif isinstance(frame, bytes):
                if not self._stopping:
                    self._relay_audio(relay, framer, frame)
                    last_audio_s = last_alive_s = now_s
            else:
                if len(frame) > self.settings.stream_max_frame_bytes:
                    raise v.ProtocolError(v.FRAME_TOO_LARGE, "a text message larger than the frame limit")
                command = self.adapter.parse_control(frame)
                if isinstance(command, v.StopCommand):
                    self._stop(relay, ack=command.ack)
                elif isinstance(command, v.FlushCommand):
                    relay.send(sm.FLUSH)
                elif isinstance(command, v.KeepAliveCommand):
                    last_alive_s = now_s  # the client says it is there: silence is not idleness
            # Checked after every frame too: a client that sends text without pause must not
            # keep the loop from ever reaching its timers.
            if not self._stopping:
                self._check_timers(relay, now_s - started_s, now_s - last_audio_s, now_s - last_alive_s)

    def _check_timers(self, relay: RelayClient, session_s: float, no_audio_s: float, silent_s: float) -> None:
        """End a session that is over its length, that KeepAlives held open without audio too
        long (an error), or whose client went silent (the normal end)."""
        settings = self.settings
        if session_s > settings.stream_max_session_s:
            logger.info("stream session reached the maximum length of %.0f s", settings.stream_max_session_s)
            self._stop(relay, ack=False)
        elif silent_s < no_audio_s and no_audio_s > settings.stream_keepalive_max_s:
            self._end_by_server(relay, v.IDLE, f"no audio for {settings.stream_keepalive_max_s:.0f} s: KeepAlive holds"
                                               " a session open at most that long (stream_keepalive_max_s); the "
                                               f"session was ended and its sentences are saved in job "
                                               f"{relay.session_id}")
        elif silent_s > min(settings.stream_idle_timeout_s, settings.stream_keepalive_max_s):
            # The original's free_resource_timeout: how a session whose client never closes ends.
            logger.info("stream session: no audio for %.0f s; ending it", silent_s)
            self._stop(relay, ack=False)

    def _end_by_server(self, relay: RelayClient, kind: str, message: str) -> None:
        """End a session for a reason of the server's, keeping its sentences, and say why at the end."""
        logger.info("stream session %s: %s", relay.session_id, message)
        self._server_end = (kind, message)
        self._stop(relay, ack=False)

    def _stop(self, relay: RelayClient, *, ack: bool) -> None:
        self._stop_ack = self._stop_ack or ack
        if not self._stopping:
            self._stopping = True
            relay.send(sm.STOP)

    # --- results -------------------------------------------------------------------------
    def _forward_results(self, relay: RelayClient) -> None:
        assert self.adapter is not None
        try:
            while True:
                try:
                    event = relay.events.get(timeout=END_TIMEOUT_S if self._stopping else None)
                except queue.Empty:  # the worker never finished
                    self._outcome = _Outcome(error_kind=v.WORKER_LOST, error_message="the stream worker did not end "
                                                                                    "the session")
                    return
                if isinstance(event, RelayError):
                    self._worker_ended = True
                    self._superseded = event.code == "superseded"
                    self._outcome = _Outcome(error_kind=_RELAY_ERROR_KINDS.get(event.code, v.INTERNAL),
                                             error_message=event.message)
                    return
                if self._handle_worker_event(event):
                    return
        except (ConnectionClosed, OSError):
            self._lost_client = True  # the client loop ends the session or leaves it for a resume
        finally:
            self._done.set()

    def _handle_worker_event(self, event: WorkerEvent) -> bool:
        """Send one worker frame on to the client; True when the session is over."""
        assert self.adapter is not None
        header = event.header
        if header.kind == sm.PARTIAL:
            self._send(self.adapter.on_partial(header.index or 0, header.text or "", header.start_ms or 0,
                                               header.end_ms or 0, stable_text=header.stable_text))
        elif header.kind == sm.FINAL:
            self._send(self.adapter.on_final(header.index or 0, header.text or "", header.start_ms or 0,
                                             header.end_ms or 0))
            self._last_final_sent = max(self._last_final_sent, header.index or 0)
        elif header.kind == sm.ENDED:
            self._worker_ended = True
            self._finals_total = header.finals
            self._outcome = _Outcome(ended=True)
            return True
        elif header.kind == sm.ERROR:
            self._worker_ended = True
            kind = v.CANCELED if header.reason == sm.CANCELED_REASON else v.INTERNAL
            self._outcome = _Outcome(error_kind=kind, error_message=header.message or "the stream worker failed")
            return True
        return False

    def _finish(self, session_id: str) -> None:
        """Say how the session ended, in the client's protocol, and close with 1000."""
        assert self.adapter is not None
        self._done.wait(timeout=END_TIMEOUT_S)
        outcome = self._outcome
        if outcome.error_kind:
            if outcome.error_kind in (v.WORKER_LOST, v.UNAVAILABLE) and not self._superseded:
                stream_jobs.fail(self.deps, session_id, outcome.error_message)
            logger.warning("stream session %s ended with an error: %s", session_id, outcome.error_message)
            frames = self.adapter.on_error(outcome.error_kind, outcome.error_message)
        elif self._server_end:  # ended well, but not by the client: say why
            frames = self.adapter.on_error(*self._server_end)
        else:
            frames = self.adapter.on_end(self._stop_ack, self._relayed_bytes / (2 * self._sample_rate_hz),
                                         self._finals_total)
        with contextlib.suppress(ConnectionClosed, OSError):
            self._send(frames)
            self.ws.close(1000)
