"""The two halves of the live relay, face to face over a real redis-server, without an API
process, a stream worker process or an engine: the API's `RelayClient` on one side, the
worker's `WorkerRelay` on the other, each as the session code drives it.

What they keep between them is a session's life apart from any one connection: frames in
order, a client that drops and reconnects (the last final its connection was sent, the
finals it missed and nothing twice), a stale connection's frames ignored, a gap, a cancel.
The audio meter that charges a live session's key is here too, and the size the split was for.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from api.streaming.billing import LIVE_CHARGE_INTERVAL_S, LiveAudioMeter
from api.streaming.relay import RelayClient, RelayError, WorkerEvent, find_session, open_relay
from shared import redis_keys
from shared import stream_messages as sm
from shared.schemas import JobEvent
from shared.stream_slots import STATE_CLAIMED, STATE_IDLE, Claim, claim_slot, heartbeat_slot
from worker.streaming.relay import HANDLED, IDLE, RelayEnded, WorkerRelay

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 350
WAIT_S = 10.0


@pytest.fixture()
def client(own_redis) -> Iterator[redis.Redis]:  # type: ignore[no-untyped-def]
    connection = redis.Redis.from_url(own_redis.url)
    connection.flushall()
    yield connection
    connection.close()


def _settings(**overrides: float) -> Any:
    values = {"stream_heartbeat_interval_s": 0.5, "stream_worker_timeout_s": 5.0, "stream_max_backlog_s": 30.0,
              "stream_resume_window_s": 30.0, "stream_api_timeout_s": 5.0}
    values.update(overrides)
    return SimpleNamespace(**values)


def _claim(client: redis.Redis, session_id: str) -> Claim:
    """A stream worker's slot, idle, then claimed for the session: as the API finds it."""
    heartbeat_slot(client, f"test-worker-{uuid.uuid4().hex[:6]}", state=STATE_IDLE)
    claim = claim_slot(client, session_id)
    assert claim is not None
    return claim


class _Worker:
    """The worker's half on a thread of its own, as the session loop drives it: whatever
    `receive` hands on (audio, flushes) or ends with goes into `got`."""

    def __init__(self, client: redis.Redis, session_id: str, claim: Claim, settings: Any) -> None:
        request = sm.SessionRequest(session_id=session_id, job_id=session_id, fence=claim.fence,
                                    expires_at_s=time.time() + 3.0, sample_rate_hz=16000)
        self.relay = WorkerRelay(client, request, settings)
        self.got: queue.Queue[tuple[str, bytes] | RelayEnded] = queue.Queue()
        self._inbox = redis_keys.stream_worker_inbox(claim.worker_id)
        self._client = client
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._client.blpop([self._inbox], timeout=WAIT_S)  # the API's request: then `ready`
        self.relay.open()
        try:
            while not self._stop.is_set():
                try:
                    kind, payload = self.relay.receive(0.02)
                except RelayEnded as end:
                    self.got.put(end)
                    return
                if kind not in (IDLE, HANDLED):
                    self.got.put((kind, payload))
        finally:
            self.relay.close()

    def next(self) -> tuple[str, bytes] | RelayEnded:
        return self.got.get(timeout=WAIT_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT_S)


def _events(relay: RelayClient, count: int) -> list[sm.RelayHeader]:
    headers = []
    for _ in range(count):
        event = relay.events.get(timeout=WAIT_S)
        assert isinstance(event, WorkerEvent), event
        headers.append(event.header)
    return headers


def _wait_until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline_s = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline_s, f"timed out waiting for {what}"
        time.sleep(0.02)


def _start(client: redis.Redis, settings: Any) -> tuple[str, Claim, RelayClient, _Worker]:
    session_id = uuid.uuid4().hex
    claim = _claim(client, session_id)
    worker = _Worker(client, session_id, claim, settings)
    relay = open_relay(client, session_id, claim, settings, 16000)
    relay.start(sm.SessionRequest(session_id=session_id, job_id=session_id, fence=claim.fence,
                                  expires_at_s=time.time() + 3.0, sample_rate_hz=16000))
    return session_id, claim, relay, worker


def test_a_dropped_client_resumes_after_the_last_final_its_connection_was_sent(client: redis.Redis) -> None:
    settings = _settings()
    session_id, claim, first, worker = _start(client, settings)
    try:
        for number in range(3):
            first.send(sm.AUDIO, bytes([number]) * 320)
        assert [worker.next() for _ in range(3)] == [(sm.AUDIO, bytes([n]) * 320) for n in range(3)]
        worker.relay.processed_bytes = 960
        for index in range(3):
            worker.relay.publish_final(index, f"sentence {index}", index * 1000, index * 1000 + 900)
        assert [header.index for header in _events(first, 3)] == [0, 1, 2]
        first.final_delivered(0)
        first.final_delivered(1)  # final 2 never reached the client: its socket dropped
        first.leave(hold_s=settings.stream_resume_window_s)
        _wait_until(lambda: worker.relay.detached, "the worker to hold the session")

        heartbeat_slot(client, claim.worker_id, state=STATE_CLAIMED, session_id=session_id, fence=claim.fence)
        point = find_session(client, session_id)
        assert point is not None and point.claim == claim and point.last_final_sent == 1
        second = open_relay(client, session_id, point.claim, settings, 16000, resuming=True)
        try:
            assert second.epoch != first.epoch
            assert second.attach(point.last_final_sent) == 960  # the client resends after what the worker has
            replayed = _events(second, 1)[0]
            assert (replayed.kind, replayed.index, replayed.text) == (sm.FINAL, 2, "sentence 2")
            first.send(sm.AUDIO, b"\x09" * 320)  # the old connection, too late: not the session's any more
            second.send(sm.AUDIO, b"\x07" * 320)
            assert worker.next() == (sm.AUDIO, b"\x07" * 320)
            second.send(sm.STOP)
            ended = worker.next()
            assert isinstance(ended, RelayEnded) and (ended.reason, ended.message) == ("stopped", "")
            worker.relay.publish(sm.ENDED, reason="stopped", finals=3)
            assert _events(second, 1)[0].kind == sm.ENDED, "a final the client has was sent again"
            superseded = first.events.get(timeout=WAIT_S)
            assert isinstance(superseded, RelayError) and superseded.code == "superseded"
        finally:
            second.close()
    finally:
        first.close()
        worker.stop()


def test_a_client_that_went_away_for_good_ends_the_session(client: redis.Redis) -> None:
    session_id, _, relay, worker = _start(client, _settings())
    try:
        relay.leave(hold_s=0)
        ended = worker.next()
        assert isinstance(ended, RelayEnded) and ended.reason == "stopped" and ended.close_audio
        assert client.get(redis_keys.stream_resume_key(session_id)) is None
    finally:
        relay.close()
        worker.stop()


def test_a_session_not_resumed_within_its_window_ends(client: redis.Redis) -> None:
    _, _, relay, worker = _start(client, _settings(stream_resume_window_s=0.3))
    try:
        relay.leave(hold_s=0.3)
        ended = worker.next()
        assert isinstance(ended, RelayEnded) and ended.reason == "not_resumed" and not ended.message
    finally:
        relay.close()
        worker.stop()


def test_a_gap_in_the_apis_frames_fails_the_session(client: redis.Redis) -> None:
    session_id, claim, relay, worker = _start(client, _settings())
    try:
        relay.send(sm.AUDIO, b"\x01" * 320)
        assert worker.next() == (sm.AUDIO, b"\x01" * 320)
        lost = sm.RelayHeader(kind=sm.AUDIO, seq=5, fence=claim.fence, sent_at_s=time.time())
        client.publish(redis_keys.stream_session_in_channel(session_id), sm.encode_frame(lost, b"\x02" * 320))
        ended = worker.next()
        assert isinstance(ended, RelayEnded) and ended.reason == "relay_gap" and "expected frame 2" in ended.message
    finally:
        relay.close()
        worker.stop()


def test_a_canceled_job_ends_the_session_without_transcribing_the_rest(client: redis.Redis) -> None:
    session_id, _, relay, worker = _start(client, _settings())
    try:
        client.publish(redis_keys.job_events_channel(session_id),
                       JobEvent(job_id=session_id, status="canceled").model_dump_json())
        ended = worker.next()
        assert isinstance(ended, RelayEnded) and ended.reason == sm.CANCELED_REASON
        assert not ended.close_audio and "DELETE /v1/jobs/" in ended.message
    finally:
        relay.close()
        worker.stop()


class _Limiter:
    def __init__(self, audio_left: bool = True) -> None:
        self.charged_s: list[float] = []
        self.audio_left = audio_left

    def record_audio(self, principal: object, audio_duration_s: float) -> None:
        self.charged_s.append(audio_duration_s)

    def has_audio_left(self, principal: object) -> bool:
        return self.audio_left


def test_the_meter_charges_a_live_session_as_it_goes_and_a_resume_only_for_its_own_audio() -> None:
    limiter = _Limiter()
    principal = SimpleNamespace(key_id="k1", audio_seconds_per_day=60)
    meter = LiveAudioMeter(limiter, principal, sample_rate_hz=8000)  # type: ignore[arg-type]
    second_bytes = 2 * 8000
    due = [meter.relayed(second_bytes) for _ in range(int(LIVE_CHARGE_INTERVAL_S))]
    assert due == [False] * (int(LIVE_CHARGE_INTERVAL_S) - 1) + [True]
    meter.charge()
    meter.relayed(second_bytes // 2)
    meter.charge()
    meter.charge()  # nothing new: no charge
    assert limiter.charged_s == [LIVE_CHARGE_INTERVAL_S, 0.5]
    assert meter.relayed_s == LIVE_CHARGE_INTERVAL_S + 0.5

    resumed = LiveAudioMeter(limiter, principal, sample_rate_hz=8000)  # type: ignore[arg-type]
    resumed.resumed_at(20 * second_bytes)  # what the earlier connections relayed, and paid for
    resumed.relayed(second_bytes)
    resumed.charge()
    assert limiter.charged_s[-1] == 1.0 and resumed.relayed_s == 21.0
    assert resumed.spent_message("job1") is None
    limiter.audio_left = False
    message = resumed.spent_message("job1")
    assert message is not None and "key k1" in message and "60 audio seconds" in message and "job1" in message


@pytest.mark.parametrize("package", ["api/streaming", "worker/streaming"])
def test_no_streaming_module_is_over_the_size_that_says_it_does_several_jobs(package: str) -> None:
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
             for path in (ROOT / package).rglob("*.py")}
    assert {path: lines for path, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}
