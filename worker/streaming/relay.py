"""The worker's half of the relay: one live session's channels, from `ready` to its end.

Knows the session's channels, sequence numbers, epochs (which connection of the session a
frame comes from), heartbeats, the audio processed so far (the API's flow control reads it),
what a reconnecting client needs (the finals sent, resent after the last one it has), and
how long to hold a session whose client or API process went away; knows nothing of wire
protocols or models. Its mirror is api.streaming.relay. The session loop
(worker.streaming.session_loop) gets from it only what the engine must hear: audio and flushes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import redis

from shared import redis_keys
from shared import stream_messages as sm
from shared.config import Settings
from shared.db.models import JobStatus
from shared.schemas import JobEvent
from worker.streaming.capacity import LagGauge

logger = logging.getLogger(__name__)

#: What `receive` returns when nothing came and a client is connected: time for a partial.
IDLE = "idle"
#: What `receive` returns when it handled what came itself, or nothing came and no client is
#: connected: nothing for the session loop to do.
HANDLED = "handled"


class RelayEnded(Exception):
    """The relay ends the session: `reason` says why; `message`, when set, makes it a failure.
    `close_audio`: whether the audio so far is still transcribed (not for a canceled job)."""

    def __init__(self, reason: str, message: str = "", *, close_audio: bool = True) -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.message = message
        self.close_audio = close_audio


class WorkerRelay:
    def __init__(self, client: redis.Redis, request: sm.SessionRequest, settings: Settings) -> None:
        self._redis = client
        self.request = request
        self.settings = settings
        self._in_channel = redis_keys.stream_session_in_channel(request.session_id)
        self._out_channel = redis_keys.stream_session_out_channel(request.session_id)
        #: Where the API announces the job's final status: a DELETE of the job ends the session.
        self._job_events_channel = redis_keys.job_events_channel(request.job_id)
        self._pubsub: Any = None
        self._out_seq = 0
        self._out_lock = threading.Lock()
        #: The connection this session now serves (see shared.stream_messages).
        self._epoch = 0
        self._expected_seq = 1
        self._last_heard_s = time.monotonic()
        #: When the API said its client was gone; None while a client is connected.
        self._detached_since_s: float | None = None
        #: Bytes of the client's audio the session has processed (the API's flow control).
        self.processed_bytes = 0
        #: The finals sent, for a reconnected client that missed some.
        self._finals_sent: list[dict[str, Any]] = []
        #: How far behind real time the session runs (the process's admission reads it).
        self.lag = LagGauge()
        self._stop_heartbeat = threading.Event()

    @property
    def detached(self) -> bool:
        """No client is connected: the session is held for one to reconnect."""
        return self._detached_since_s is not None

    # --- open and close ------------------------------------------------------------------
    def open(self) -> None:
        """Listen to the session's input and its job's events, tell the API `ready`, and beat."""
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(self._in_channel, self._job_events_channel)
        self.publish(sm.READY)
        threading.Thread(target=self._heartbeats, name="stream-heartbeat", daemon=True).start()

    def close(self) -> None:
        """Stop listening and beating; `publish` still works (the session's end is sent after)."""
        self._stop_heartbeat.set()
        if self._pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self._pubsub.close()

    # --- worker -> API -------------------------------------------------------------------
    def publish(self, kind: str, **fields: object) -> None:
        with self._out_lock:
            self._out_seq += 1
            header = sm.RelayHeader(kind=kind, seq=self._out_seq, fence=self.request.fence, sent_at_s=time.time(),
                                    processed_bytes=self.processed_bytes, epoch=self._epoch,
                                    **fields)  # type: ignore[arg-type]
            self._redis.publish(self._out_channel, sm.encode_frame(header))

    def publish_final(self, index: int, text: str, start_ms: int, end_ms: int, **extra: Any) -> None:
        """Send a final sentence, and keep it for a client that reconnects without it. `extra`:
        the final's `words` and speaker fields (shared.stream_messages.RelayHeader)."""
        fields: dict[str, Any] = {"text": text, "index": index, "start_ms": start_ms, "end_ms": end_ms, **extra}
        self._finals_sent.append(fields)
        self.publish(sm.FINAL, **fields)

    def _heartbeats(self) -> None:
        """From a thread of its own, so a long final decode never looks like a dead worker."""
        interval_s = self.settings.stream_heartbeat_interval_s
        while not self._stop_heartbeat.wait(interval_s):
            try:
                self.publish(sm.HEARTBEAT)
            except redis.RedisError:
                logger.warning("session %s: could not send a heartbeat", self.request.session_id)

    # --- API -> worker -------------------------------------------------------------------
    def receive(self, timeout_s: float) -> tuple[str, bytes]:
        """The next frame for the session loop (`sm.AUDIO` or `sm.FLUSH`, in order), or
        `IDLE` / `HANDLED` with no payload; raises `RelayEnded` when the session must end."""
        message = self._pubsub.get_message(timeout=timeout_s)
        now_s = time.monotonic()
        if message is None:
            return self._nothing_came(now_s)
        if message.get("type") != "message":
            return HANDLED, b""
        if _channel_name(message) == self._job_events_channel:
            if JobEvent.model_validate_json(message["data"]).status == JobStatus.CANCELED.value:
                raise RelayEnded(sm.CANCELED_REASON, "the session's job was canceled (DELETE /v1/jobs/"
                                                     f"{self.request.job_id})", close_audio=False)
            return HANDLED, b""
        header, payload = sm.decode_frame(message["data"])
        if header.fence != self.request.fence:
            return HANDLED, b""
        if header.kind == sm.ATTACH and header.epoch != self._epoch:
            self._attach(header, now_s)
            return HANDLED, b""
        if header.epoch != self._epoch:
            return HANDLED, b""  # a connection the session has moved on from
        if header.seq != self._expected_seq:
            raise RelayEnded("relay_gap", f"audio was lost between the API and the worker (expected frame "
                                          f"{self._expected_seq}, got {header.seq})")
        self._expected_seq += 1
        self._last_heard_s = now_s
        # Its connection's API is alive after all (a stall, not a death): not detached,
        # unless this very frame says the client left (DETACH, below).
        self._detached_since_s = None
        if header.kind == sm.AUDIO:
            self.lag.frame(header.sent_at_s)
            return sm.AUDIO, payload
        if header.kind == sm.FLUSH:
            return sm.FLUSH, b""
        if header.kind == sm.STOP:
            raise RelayEnded("stopped")
        if header.kind == sm.DETACH:
            if self.settings.stream_resume_window_s <= 0:
                raise RelayEnded("stopped")
            self._detached_since_s = now_s
            logger.info("session %s: its client dropped; holding it %.0f s for a reconnect",
                        self.request.session_id, self.settings.stream_resume_window_s)
        return HANDLED, b""

    def _nothing_came(self, now_s: float) -> tuple[str, bytes]:
        """A wait with no frame: a session whose client (or its API process) went away is held
        for the resume window, then ended."""
        window_s = self.settings.stream_resume_window_s
        if self._detached_since_s is not None:
            if now_s - self._detached_since_s > window_s:
                logger.info("session %s: not resumed within %.0f s; ending it", self.request.session_id, window_s)
                raise RelayEnded("not_resumed")
            return HANDLED, b""
        if now_s - self._last_heard_s > self.settings.stream_api_timeout_s:
            if window_s <= 0:
                raise RelayEnded("api_lost", "lost contact with the API holding the client's connection")
            # The API process died (a crash, a deploy): its client is cut off as if its
            # network had dropped, and may reconnect through another process.
            self._detached_since_s = now_s
            logger.warning("session %s: lost contact with its API process; holding it %.0f s for its client to "
                           "reconnect", self.request.session_id, window_s)
            return HANDLED, b""
        return IDLE, b""

    def _attach(self, header: sm.RelayHeader, now_s: float) -> None:
        """A reconnected client, through whichever API process: from now on only its frames
        count, whether or not the old connection said it was gone. It is told how much audio
        the session has, then sent the finals after the last one it has."""
        self._epoch = header.epoch
        self.lag = LagGauge()  # another API process: another clock to measure against
        self._expected_seq = header.seq + 1
        self._detached_since_s = None
        self._last_heard_s = now_s
        self.publish(sm.ATTACHED, received_bytes=self.processed_bytes)
        after_index = header.index if header.index is not None else -1
        # Each once, in order: the client says which it has, and finals are only ever sent
        # by the session loop's thread, which is the one running this.
        for fields in self._finals_sent:
            if fields["index"] > after_index:
                self.publish(sm.FINAL, **fields)
        logger.info("session %s resumed (epoch %d) at %d bytes of audio", self.request.session_id, self._epoch,
                    self.processed_bytes)


def _channel_name(message: dict) -> str:  # type: ignore[type-arg]
    channel = message.get("channel", b"")
    return channel.decode() if isinstance(channel, bytes) else str(channel)
