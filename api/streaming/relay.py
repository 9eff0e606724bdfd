"""The API's half of the relay: claim a stream worker, hand it the session, move frames.

Knows slots, channels, sequence numbers, heartbeats, flow control and what a reconnecting
client needs (the session's worker, the last final its connection was sent); knows nothing
of wire protocols or models. Runs inside a gevent greenlet per websocket, so its waits are
cheap. Its mirror is worker.streaming.relay.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass

import redis

from shared import redis_keys
from shared import stream_messages as sm
from shared.config import Settings
from shared.stream_slots import Claim, claim_slot, slot_of_session

logger = logging.getLogger(__name__)

#: How often a waiting session asks for a slot again.
CLAIM_RETRY_INTERVAL_S = 0.1
#: How long the claimed worker has to subscribe and answer `ready`.
READY_TIMEOUT_S = 3.0
#: Inbox entries outlive any claim that could still want them, then vanish.
INBOX_TTL_S = 60


class RelayError(Exception):
    """The relay failed; `code` says how, for the protocol adapter's error message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class WorkerEvent:
    """A frame from the worker, for the session loop."""

    header: sm.RelayHeader
    received_at_s: float


@dataclass
class ResumePoint:
    """Where a session whose client reconnects goes on: the worker's claim that holds it, and
    the last final sentence its previous connection was sent (-1: none)."""

    claim: Claim
    last_final_sent: int


def find_session(client: redis.Redis, session_id: str) -> ResumePoint | None:
    """The session's worker and resume point; None when no worker holds it any more."""
    claim = slot_of_session(client, session_id)
    if claim is None:
        return None
    stored = client.get(redis_keys.stream_resume_key(session_id))
    return ResumePoint(claim, int(json.loads(stored)["last_final_sent"]) if stored else -1)


def wait_for_slot(client: redis.Redis, session_id: str, wait_s: float) -> Claim | None:
    """Claim a free stream worker, asking again for up to `wait_s`; None when none came free."""
    deadline_s = time.monotonic() + wait_s
    while True:
        claim = claim_slot(client, session_id)
        if claim is not None or time.monotonic() >= deadline_s:
            return claim
        time.sleep(CLAIM_RETRY_INTERVAL_S)


def open_relay(client: redis.Redis, session_id: str, claim: Claim, settings: Settings, sample_rate_hz: int, *,
               resuming: bool = False) -> RelayClient:
    """The relay of one connection to the session's worker; a resuming connection gets a
    fresh epoch, so the worker tells its frames from the old connection's."""
    return RelayClient(client, session_id, claim, heartbeat_interval_s=settings.stream_heartbeat_interval_s,
                       worker_timeout_s=settings.stream_worker_timeout_s, audio_bytes_per_s=2 * sample_rate_hz,
                       max_backlog_s=settings.stream_max_backlog_s,
                       epoch=secrets.randbelow(2**31 - 1) + 1 if resuming else 0)


class RelayClient:
    """One session's link to its worker: publishes input frames, collects output frames."""

    def __init__(self, client: redis.Redis, session_id: str, claim: Claim, *, heartbeat_interval_s: float,
                 worker_timeout_s: float, audio_bytes_per_s: int, max_backlog_s: float, epoch: int = 0) -> None:
        """`audio_bytes_per_s`: the session's own PCM rate (2 bytes x its sample rate, 8-48 kHz),
        so the backlog allowed is `max_backlog_s` of its audio whatever the rate."""
        self._redis = client
        #: This connection of the session (0: the first; a resumed one gets a fresh number).
        self.epoch = epoch
        self.session_id = session_id
        self.claim = claim
        self._in_channel = redis_keys.stream_session_in_channel(session_id)
        self._out_channel = redis_keys.stream_session_out_channel(session_id)
        self._heartbeat_interval_s = heartbeat_interval_s
        self._worker_timeout_s = worker_timeout_s
        self._audio_bytes_per_s = audio_bytes_per_s
        self._max_backlog_bytes = int(max_backlog_s * audio_bytes_per_s)
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._send_lock = threading.Lock()
        self._seq = 0
        self._sent_bytes = 0
        self._processed_bytes = 0
        self._credit = threading.Condition()
        #: Whether flow control ever paused this session's client (logged once).
        self.throttled = False
        self._last_sent_s = time.monotonic()
        self._last_heard_s = time.monotonic()
        self._expected_seq = 1
        self.events: queue.Queue[WorkerEvent | RelayError] = queue.Queue()
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        #: The index of the last final sentence this connection's client was sent (-1: none yet).
        self.last_final_sent = -1

    # --- start ---------------------------------------------------------------------------
    def start(self, request: sm.SessionRequest) -> None:
        """Subscribe, hand the worker its request, and wait for its `ready`: no audio is
        published before the worker listens, since pub/sub drops what nobody hears."""
        self._pubsub.subscribe(self._out_channel)
        inbox = redis_keys.stream_worker_inbox(self.claim.worker_id)
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(inbox, request.model_dump_json())
            pipe.expire(inbox, INBOX_TTL_S)
            pipe.execute()
        header = self._await_handshake(sm.READY)
        if header is None:
            raise RelayError("worker_unready", "the stream worker did not take the session in time")
        self._begin_reading(header)

    def attach(self, after_index: int) -> int:
        """Take over a session whose client reconnected: the worker answers with how many
        bytes of audio it has (the client resends from there), then sends again the finals
        after `after_index`. Returns the byte count."""
        self._pubsub.subscribe(self._out_channel)
        with self._send_lock:
            header = sm.RelayHeader(kind=sm.ATTACH, seq=0, fence=self.claim.fence, sent_at_s=time.time(),
                                    epoch=self.epoch, index=after_index)
            self._redis.publish(self._in_channel, sm.encode_frame(header))
        reply = self._await_handshake(sm.ATTACHED)
        if reply is None:
            raise RelayError("worker_unready", "the session's worker did not answer; it may have ended")
        received_bytes = reply.received_bytes or 0
        self._sent_bytes = self._processed_bytes = received_bytes
        self.last_final_sent = after_index
        self._begin_reading(reply)
        return received_bytes

    def _await_handshake(self, kind: str) -> sm.RelayHeader | None:
        """The worker's answer of `kind` to this claim and connection (its epoch), or None
        after READY_TIMEOUT_S."""
        deadline_s = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline_s:
            message = self._pubsub.get_message(timeout=max(0.01, deadline_s - time.monotonic()))
            if message is None or message.get("type") != "message":
                continue
            header, _ = sm.decode_frame(message["data"])
            if header.fence == self.claim.fence and header.epoch == self.epoch and header.kind == kind:
                return header
        return None

    def _begin_reading(self, first: sm.RelayHeader) -> None:
        self._expected_seq = first.seq + 1
        self._last_heard_s = time.monotonic()
        self._spawn(self._read_worker, "relay-reader")
        self._spawn(self._keepalive, "relay-keepalive")

    def _spawn(self, target, name: str) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, name=f"{name}-{self.session_id[:8]}", daemon=True)
        thread.start()
        self._threads.append(thread)

    # --- API -> worker -------------------------------------------------------------------
    def send(self, kind: str, payload: bytes = b"", received_at_s: float | None = None) -> None:
        with self._send_lock:
            self._seq += 1
            header = sm.RelayHeader(kind=kind, seq=self._seq, fence=self.claim.fence, sent_at_s=time.time(),
                                    received_at_s=received_at_s, epoch=self.epoch)
            self._redis.publish(self._in_channel, sm.encode_frame(header, payload))
            self._last_sent_s = time.monotonic()
            self._sent_bytes += len(payload)

    def final_delivered(self, index: int) -> None:
        """The client was sent final `index`: a reconnect goes on after it."""
        self.last_final_sent = max(self.last_final_sent, index)

    def leave(self, *, hold_s: float) -> None:
        """The client left before the end. `hold_s` > 0: the worker holds the session that
        long for a reconnect (DETACH), and the resume key remembers the last final this
        connection was sent; 0: the worker ends the session (STOP)."""
        if hold_s > 0:
            self._redis.set(redis_keys.stream_resume_key(self.session_id),
                            json.dumps({"last_final_sent": self.last_final_sent}), ex=int(hold_s) + 10)
            self.send(sm.DETACH)
        else:
            self.send(sm.STOP)

    def wait_for_credit(self, timeout_s: float) -> bool:
        """Block while the worker holds more unprocessed audio than the backlog allows."""
        deadline_s = time.monotonic() + timeout_s
        with self._credit:
            if self._sent_bytes - self._processed_bytes > self._max_backlog_bytes and not self.throttled:
                self.throttled = True
                held_bytes = self._sent_bytes - self._processed_bytes
                logger.info("session %s: the worker holds %.1f s (%d bytes) of unprocessed audio; reading the client"
                            " paused", self.session_id, held_bytes / self._audio_bytes_per_s, held_bytes)
            while self._sent_bytes - self._processed_bytes > self._max_backlog_bytes:
                remaining_s = deadline_s - time.monotonic()
                if remaining_s <= 0 or self._closed.is_set():
                    return False
                self._credit.wait(min(remaining_s, 0.5))
        return True

    def _keepalive(self) -> None:
        while not self._closed.wait(self._heartbeat_interval_s / 2):
            if time.monotonic() - self._last_sent_s >= self._heartbeat_interval_s:
                try:
                    self.send(sm.KEEPALIVE)
                except redis.RedisError:
                    return  # the reader reports the lost connection

    # --- worker -> API -------------------------------------------------------------------
    def _read_worker(self) -> None:
        try:
            while not self._closed.is_set():
                message = self._pubsub.get_message(timeout=self._heartbeat_interval_s / 2)
                now_s = time.monotonic()
                if message is None or message.get("type") != "message":
                    if now_s - self._last_heard_s > self._worker_timeout_s:
                        self.events.put(RelayError("worker_lost", "the stream worker stopped answering"))
                        return
                    continue
                header, _ = sm.decode_frame(message["data"])
                if header.fence != self.claim.fence:
                    continue
                if header.epoch != self.epoch:
                    # Another connection resumed the session: this one is over, the session is not.
                    self.events.put(RelayError("superseded", "the session continues on a newer connection"))
                    return
                if header.seq != self._expected_seq:
                    self.events.put(RelayError(
                        "relay_gap", f"lost results between the worker and the API (expected frame "
                                     f"{self._expected_seq}, got {header.seq})"))
                    return
                self._expected_seq += 1
                self._last_heard_s = now_s
                if header.processed_bytes is not None:
                    with self._credit:
                        self._processed_bytes = max(self._processed_bytes, header.processed_bytes)
                        self._credit.notify_all()
                if header.kind != sm.HEARTBEAT:
                    self.events.put(WorkerEvent(header, time.time()))
                if header.kind in (sm.ENDED, sm.ERROR):
                    return
        except (redis.RedisError, OSError, ValueError) as exc:
            if not self._closed.is_set():
                self.events.put(RelayError("redis_lost", f"lost the connection to Redis: {exc}"))

    def close(self) -> None:
        self._closed.set()
        with self._credit:
            self._credit.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2)
        with contextlib.suppress(redis.RedisError, OSError):
            self._pubsub.close()
