"""One websocket connection of a live session: the frame pump.

Moves the client's audio and commands (through its wire protocol's adapter) to the session's
worker, and the worker's results back, until the session ends or the client goes. What is
decided before the first frame (key, limits, options, a worker, the job) is admission's; the
link to the worker and what a reconnecting client needs are the relay's; the audio's charge
is billing's. Runs in one gevent greenlet for the client's frames plus one that forwards the
worker's results. A session may outlive a connection: a dropped client reconnects to it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass

import redis
from simple_websocket import ConnectionClosed

from api.deps import ApiDeps
from api.principal import Principal
from api.streaming import jobs as stream_jobs
from api.streaming import vocabulary as v
from api.streaming.admission import LiveAdmission, Refused
from api.streaming.before_start import BeforeStart
from api.streaming.billing import LiveAudioMeter
from api.streaming.framing import AudioFramer
from api.streaming.protocols import detect
from api.streaming.relay import RelayClient, RelayError, WorkerEvent, open_relay
from api.streaming.socket_gate import GatedSocket
from shared import stream_messages as sm

logger = logging.getLogger(__name__)

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


class LiveConnection:
    def __init__(self, ws, deps: ApiDeps, default_protocol: str,  # type: ignore[no-untyped-def]
                 principal: Principal | None = None, resume_session_id: str = "",
                 gate: GatedSocket | None = None) -> None:
        """`principal`: the caller, when the upgrade request carried a key; `resume_session_id`:
        the `session` query parameter, the session a reconnecting client goes on with."""
        self.ws = ws
        #: Until the session starts, a socket may make the API hold very little.
        self._before_start = BeforeStart(ws, gate, deps.settings, authenticated=principal is not None)
        self._admission = LiveAdmission(deps, principal, resume_session_id)
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
        #: The audio relayed, and charged to the caller's key; set once the session is admitted.
        self._meter: LiveAudioMeter | None = None
        #: Why the server ended a session that ended well (kind, message): the key's daily
        #: audio used up, or KeepAlives without audio for too long.
        self._server_end: tuple[str, str] | None = None
        #: How many finals the whole session made (the worker says so at the end).
        self._finals_total: int | None = None

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
            self.adapter = detect(first_text, self.default_protocol)
            start = self.adapter.parse_start(first_text)
            admitted = self._admission.admit(start, self.adapter.name)
        except (v.ProtocolError, Refused) as exc:
            self._refuse(exc.kind, exc.message)
            return
        relay = open_relay(self.deps.redis, admitted.session_id, admitted.claim, self.settings,
                           admitted.sample_rate_hz, resuming=admitted.request is None)
        meter = self._meter = LiveAudioMeter(self.deps.limiter, admitted.principal, admitted.sample_rate_hz)
        try:
            if admitted.request is not None:
                self._start(relay, admitted.request, early_audio, start.stop_at_once)
            else:
                self._resume(relay, admitted.session_id, admitted.resume_after_index)
        finally:
            relay.close()
            meter.charge()

    def _start(self, relay: RelayClient, request: sm.SessionRequest, early_audio: list[bytes],
               stop_at_once: v.StopCommand | None) -> None:
        """Hand the worker its session, then relay from the first frame (and any audio sent
        before the start message)."""
        assert self.adapter is not None
        session_id = request.session_id
        try:
            relay.start(request)
        except (RelayError, redis.RedisError) as exc:
            message = exc.message if isinstance(exc, RelayError) else f"the stream relay failed: {exc}"
            stream_jobs.fail(self.deps, session_id, message)
            self._refuse(v.WORKER_LOST, message)
            return
        logger.info("stream session %s (%s) pinned to %s", session_id, self.adapter.name, relay.claim.worker_id)
        self._send(self.adapter.on_started(session_id))
        self._serve(relay, session_id, early_audio, stop_at_once)

    def _resume(self, relay: RelayClient, session_id: str, after_index: int) -> None:
        """A client reconnecting to its session: take the session over from the worker that
        holds it, tell the client how much audio the server has, send it the finals it
        missed (after `after_index`), and go on as before."""
        assert self.adapter is not None and self._meter is not None
        try:
            resumed_bytes = relay.attach(after_index)
        except (RelayError, redis.RedisError) as exc:
            self._refuse(v.WORKER_LOST, f"session {session_id} could not be resumed: "
                                        f"{exc.message if isinstance(exc, RelayError) else exc}")
            return
        self._meter.resumed_at(resumed_bytes)  # the earlier connections paid for theirs
        logger.info("stream session %s resumed at %d bytes, after final %d", session_id, resumed_bytes, after_index)
        self._send(self.adapter.on_started(session_id, resumed_bytes=resumed_bytes))
        # A client that reconnects every few seconds never reaches the allowance check its
        # connections make as their audio adds up: the key's day is checked at each resume.
        self._serve(relay, session_id, [], end_at_once=self._meter.spent_message(session_id))

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
            relay.leave(hold_s=self.settings.stream_resume_window_s if resumable else 0)
        except redis.RedisError:
            logger.warning("stream session %s: could not tell the worker its client left", session_id)
            return
        logger.info("stream session %s: the client %s", session_id,
                    f"dropped; its worker holds the session {self.settings.stream_resume_window_s:.0f} s for a "
                    "reconnect" if resumable else "went away; its worker finishes the job")

    def _relay_audio(self, relay: RelayClient, framer: AudioFramer, frame: bytes) -> None:
        assert self._meter is not None
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
        if self._meter.relayed(len(pcm)):
            self._meter.charge()
            if not self._stopping and (spent := self._meter.spent_message(relay.session_id)):
                self._end_by_server(relay, v.LIMITED, spent)

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
                if self._handle_worker_event(relay, event):
                    return
        except (ConnectionClosed, OSError):
            self._lost_client = True  # the client loop ends the session or leaves it for a resume
        finally:
            self._done.set()

    def _handle_worker_event(self, relay: RelayClient, event: WorkerEvent) -> bool:
        """Send one worker frame on to the client; True when the session is over."""
        assert self.adapter is not None
        header = event.header
        if header.kind == sm.PARTIAL:
            self._send(self.adapter.on_partial(header.index or 0, header.text or "", header.start_ms or 0,
                                               header.end_ms or 0, stable_text=header.stable_text))
        elif header.kind == sm.FINAL:
            self._send(self.adapter.on_final(header.index or 0, header.text or "", header.start_ms or 0,
                                             header.end_ms or 0, words=v.timed_words_of(header.words),
                                             speaker=v.SpeakerLabel.of(header)))
            relay.final_delivered(header.index or 0)
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
        assert self.adapter is not None and self._meter is not None
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
            frames = self.adapter.on_end(self._stop_ack, self._meter.relayed_s, self._finals_total)
        with contextlib.suppress(ConnectionClosed, OSError):
            self._send(frames)
            self.ws.close(1000)
