"""Issue 17, items 4 and 7: a webhook receiver cannot hold the workers, and deleted means deleted.

Item 4 against real sockets and real processes: hostile receivers (tests/support/
trickle_receiver.py) that promise a gigabyte and trickle it, or trickle the status line, or
send a burst and stall; a name whose lookup hangs. Each attempt ends at its one deadline and
the delivery is left to retry; and on a real stack a trickling receiver holds a thread of the
webhooks node, never the only sentence worker. Item 7: the stored bodies of a job's events go
with its data (DELETE, retention), a later attempt sends the event without the transcript, and
redelivering a deleted job's event is 410.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from shared.config import Settings
from shared.db.migrate import upgrade_to_head
from shared.db.models import DeliveryState, Job, JobStatus, utc_now
from shared.db.repository import JobRepository
from shared.db.retention import RetentionRepository
from shared.db.session import make_engine, make_session_factory
from shared.db.webhooks import REDACTED_PAYLOAD, WebhookRepository
from shared.storage.local import LocalStorage
from shared.transcript import Segment, Transcript
from tests.support.job_rows import job_row
from tests.support.speech import REFERENCE_SENTENCES, synthesize
from tests.support.stack import Stack, running_stack, wait_for_job
from tests.support.trickle_receiver import TrickleReceiver, running_trickle_receiver
from tests.support.webhook_receiver import Receiver, running_receiver
from worker.services.retention import expire_old_data
from worker.services.webhooks import AttemptOutcome, WebhookContext, attempt_delivery

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: An attempt that has not returned after this long is held by its receiver: the bug.
HELD_LIMIT_S = 45.0
TRANSCRIPT_TEXT = "the secret launch date is friday"


# --- item 4: one deadline per attempt (the service, real sockets) ---------------------------

@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[WebhookContext]:
    database_url = f"sqlite:///{tmp_path / 'webhooks.db'}"
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    settings = Settings(data_dir=tmp_path, webhook_secrets=[SECRET], webhook_allowed_networks=["127.0.0.0/8"],
                        webhook_attempt_deadline_s=1.5, webhook_retry_schedule_s=[60.0])
    yield WebhookContext(settings=settings, jobs=JobRepository(factory), webhooks=WebhookRepository(factory),
                         storage=LocalStorage(tmp_path / "storage"))
    engine.dispose()


def finished_job(ctx: WebhookContext, callback_url: str, text: str = TRANSCRIPT_TEXT) -> str:
    """A succeeded job with a stored transcript and a pending event to `callback_url`."""
    job_id = uuid.uuid4().hex
    ctx.jobs.create(job_row(job_id, mode="sentence", queue="sentence", callback_url=callback_url))
    assert ctx.jobs.transition(job_id, JobStatus.RUNNING)
    key = f"transcripts/{job_id}.json"
    transcript = Transcript(text=text, segments=[Segment(start_s=0.0, end_s=1.0, text=text)], language="en",
                            duration_s=1.0)
    ctx.storage.put_bytes(key, transcript.model_dump_json().encode())
    assert ctx.jobs.transition(job_id, JobStatus.SUCCEEDED, transcript_key=key, finished_at=utc_now())
    return job_id


def attempt_within_limit(ctx: WebhookContext, job_id: str) -> AttemptOutcome | None:
    """One attempt on a thread; fails the test when the receiver still holds it after
    HELD_LIMIT_S (how the code before the fix behaved: it waited as long as bytes came)."""
    [delivery] = ctx.webhooks.for_job(job_id)
    outcome: list[AttemptOutcome | None] = []
    thread = threading.Thread(target=lambda: outcome.append(attempt_delivery(ctx, delivery.id)), daemon=True)
    thread.start()
    thread.join(HELD_LIMIT_S)
    assert not thread.is_alive(), f"the receiver still held the attempt after {HELD_LIMIT_S} s"
    return outcome[0]


def wait_released(receiver: TrickleReceiver, timeout_s: float = 30.0) -> None:
    deadline_s = time.monotonic() + timeout_s
    while receiver.snapshot() != (receiver.accepted, 0) or receiver.accepted == 0:
        assert time.monotonic() < deadline_s, f"the sender still holds the receiver: {receiver.snapshot()}"
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["body", "headers"])
def test_a_trickling_receiver_ends_at_the_deadline_and_the_delivery_retries(ctx: WebhookContext, mode: str) -> None:
    with running_trickle_receiver(interval_s=0.2, mode=mode) as receiver:  # type: ignore[arg-type]
        job_id = finished_job(ctx, f"{receiver.url}/hook")
        outcome = attempt_within_limit(ctx, job_id)
        wait_released(receiver)
    assert outcome is not None and outcome.state == DeliveryState.PENDING and outcome.retry_in_s is not None
    [delivery] = ctx.webhooks.for_job(job_id)
    assert delivery.state == DeliveryState.PENDING and delivery.locked_until is None
    [attempt] = delivery.attempts
    assert attempt["status_code"] is None
    assert attempt["error"] == "deadline: no complete answer within 1.5 s"


def test_only_the_first_bytes_of_an_answer_are_read(ctx: WebhookContext) -> None:
    """A 2xx whose body is huge (64 KiB at once, then a trickle of the promised gigabyte) is
    delivered once the first webhook_max_response_bytes are in: the body is never waited for."""
    with running_trickle_receiver(interval_s=5.0, burst_bytes=65536) as receiver:
        job_id = finished_job(ctx, f"{receiver.url}/hook")
        outcome = attempt_within_limit(ctx, job_id)
        wait_released(receiver)
    assert outcome is not None and outcome.state == DeliveryState.DELIVERED
    [delivery] = ctx.webhooks.for_job(job_id)
    assert [a["status_code"] for a in delivery.attempts] == [200]


def test_a_name_lookup_that_hangs_ends_at_the_deadline(ctx: WebhookContext, monkeypatch: pytest.MonkeyPatch) -> None:
    real_getaddrinfo = socket.getaddrinfo
    release = threading.Event()

    def hanging(host: str, *args: object, **kwargs: object) -> object:
        if host == "slow-dns.example.com":
            release.wait(HELD_LIMIT_S * 2)  # a resolver that never answers
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        job_id = finished_job(ctx, "http://slow-dns.example.com/hook")
        outcome = attempt_within_limit(ctx, job_id)
    finally:
        release.set()
    assert outcome is not None and outcome.state == DeliveryState.PENDING
    [delivery] = ctx.webhooks.for_job(job_id)
    assert delivery.attempts[0]["error"] == "deadline: no complete answer within 1.5 s"


def test_the_guard_still_refuses_private_addresses_with_a_deadline(ctx: WebhookContext) -> None:
    strict = WebhookContext(settings=ctx.settings.model_copy(update={"webhook_allowed_networks": []}),
                            jobs=ctx.jobs, webhooks=ctx.webhooks, storage=ctx.storage)
    with running_trickle_receiver() as receiver:
        job_id = finished_job(strict, f"{receiver.url}/hook")
        outcome = attempt_within_limit(strict, job_id)
        assert receiver.accepted == 0
    assert outcome is not None and outcome.state == DeliveryState.FAILED
    [delivery] = strict.webhooks.for_job(job_id)
    assert delivery.attempts[0]["error"].startswith("refused:")


def test_the_deadline_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="webhook_attempt_deadline_s must be more than 0"):
        Settings(webhook_attempt_deadline_s=0)
    with pytest.raises(ValueError, match="webhook_worker_concurrency must be at least 1"):
        Settings(webhook_worker_concurrency=0)
    assert Settings().webhook_queue == "webhooks"


# --- item 7: stored bodies go with the job's data (repositories, both databases) -----------

@pytest.fixture
def db_ctx(database_url: str, tmp_path: Path) -> Iterator[WebhookContext]:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    settings = Settings(data_dir=tmp_path, webhook_secrets=[SECRET], webhook_allowed_networks=["127.0.0.0/8"],
                        webhook_attempt_deadline_s=10.0, retention_days=1.0)
    yield WebhookContext(settings=settings, jobs=JobRepository(factory), webhooks=WebhookRepository(factory),
                         storage=LocalStorage(tmp_path / "storage"))
    engine.dispose()


def stored_payloads(ctx: WebhookContext, job_id: str) -> list[str | None]:
    return [delivery.payload for delivery in ctx.webhooks.for_job(job_id)]


def delivered_once(ctx: WebhookContext, receiver: Receiver, job_id: str) -> None:
    [delivery] = ctx.webhooks.for_job(job_id)
    assert attempt_delivery(ctx, delivery.id) is not None
    [payload] = stored_payloads(ctx, job_id)
    assert payload is not None and TRANSCRIPT_TEXT in payload  # the outbox keeps the body it sent


def test_deleting_a_job_redacts_its_stored_events(db_ctx: WebhookContext) -> None:
    with running_receiver() as receiver:
        job_id = finished_job(db_ctx, f"{receiver.url}/hook")
        delivered_once(db_ctx, receiver, job_id)
        db_ctx.jobs.clear_stored_keys(job_id)  # what DELETE does once the objects are deleted
        assert stored_payloads(db_ctx, job_id) == [REDACTED_PAYLOAD]
        # Sent again (a redelivery queued before): the event goes without the transcript,
        # and nothing is stored again.
        [delivery] = db_ctx.webhooks.for_job(job_id)
        assert db_ctx.webhooks.redeliver(delivery.id)
        outcome = attempt_delivery(db_ctx, delivery.id)
        assert outcome is not None and outcome.state == DeliveryState.DELIVERED
        first, second = (json.loads(r.body) for r in receiver.received("/hook"))
    assert first["data"]["transcript"]["text"] == TRANSCRIPT_TEXT
    assert second["data"]["transcript"] is None and second["data"]["data_deleted"] is True
    assert TRANSCRIPT_TEXT not in json.dumps(second)
    assert stored_payloads(db_ctx, job_id) == [REDACTED_PAYLOAD]


def test_a_body_built_before_the_delete_is_never_stored_after_it(db_ctx: WebhookContext) -> None:
    job_id = finished_job(db_ctx, "https://hooks.example.invalid/x")
    [delivery] = db_ctx.webhooks.for_job(job_id)
    db_ctx.jobs.clear_stored_keys(job_id)
    assert db_ctx.webhooks.fix_payload(delivery.id, json.dumps({"transcript": TRANSCRIPT_TEXT})) == REDACTED_PAYLOAD
    assert stored_payloads(db_ctx, job_id) == [REDACTED_PAYLOAD]


def test_retention_redacts_stored_events_with_the_data(db_ctx: WebhookContext) -> None:
    with running_receiver() as receiver:
        job_id = finished_job(db_ctx, f"{receiver.url}/hook")
        delivered_once(db_ctx, receiver, job_id)
    young = finished_job(db_ctx, "https://hooks.example.invalid/young")
    db_ctx.webhooks.fix_payload(db_ctx.webhooks.for_job(young)[0].id, f'{{"kept": "{TRANSCRIPT_TEXT}"}}')
    with db_ctx.jobs.session_factory.begin() as session:  # finished two days ago; the retention is one
        session.get(Job, job_id).finished_at = utc_now() - timedelta(days=2)  # type: ignore[union-attr]
    assert job_id in expire_old_data(db_ctx.settings, RetentionRepository(db_ctx.jobs.session_factory),
                                     db_ctx.storage)
    assert stored_payloads(db_ctx, job_id) == [REDACTED_PAYLOAD]
    assert TRANSCRIPT_TEXT in (stored_payloads(db_ctx, young)[0] or "")  # within retention: untouched


# --- real processes: the webhooks node, DELETE and redeliver through the API ----------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    # A deadline far longer than any test waits: what keeps the sentence worker free must be
    # the webhooks node, not the deadline.
    with running_stack(tmp_path_factory.mktemp("abuse-webhooks"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=1, webhook_secrets=[SECRET], webhook_allowed_networks=["127.0.0.0/8"],
                       webhook_attempt_deadline_s=600.0, webhook_retry_schedule_s=[600.0]) as running:
        yield running


@pytest.fixture(scope="module")
def clip(speech_dir: Path) -> Path:
    return synthesize(REFERENCE_SENTENCES[0], speech_dir / "abuse-webhooks-s0.wav")


def submit_sentence(stack: Stack, clip: Path, **fields: str) -> str:
    with clip.open("rb") as audio:
        response = requests.post(stack.url("/v1/jobs"), files={"audio": (clip.name, audio)},
                                 data={"mode": "sentence", **fields}, timeout=60)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_until(condition: object, what: str, timeout_s: float = 60.0) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline_s, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_trickling_receiver_does_not_hold_the_only_sentence_worker(stack: Stack, clip: Path) -> None:
    """One sentence worker; a receiver holds the event of a sentence job for as long as the
    attempt lets it (10 minutes here). Another sentence job still finishes meanwhile: the
    delivery holds a thread of the webhooks node, not the sentence worker (before the fix
    deliveries ran on the sentence queue, and the second job waited behind the trickle)."""
    with running_trickle_receiver(interval_s=0.5) as receiver:
        first = submit_sentence(stack, clip, callback_url=f"{receiver.url}/hook")
        assert wait_for_job(stack, first)["status"] == "succeeded"
        wait_until(lambda: receiver.snapshot()[1] == 1, "the delivery to reach the trickling receiver")
        second = submit_sentence(stack, clip)
        assert wait_for_job(stack, second, timeout_s=120)["status"] == "succeeded"
        assert receiver.snapshot() == (1, 1)  # the trickle still holds its attempt, all along
    log = requests.get(stack.url(f"/v1/jobs/{first}/webhooks"), timeout=10).json()["deliveries"]
    assert [d["state"] for d in log] == ["pending"]


def test_delete_removes_the_stored_event_and_redeliver_is_gone(stack: Stack, clip: Path) -> None:
    engine = make_engine(stack.settings.database_url)
    webhooks = WebhookRepository(make_session_factory(engine))
    try:
        with running_receiver() as receiver:
            job_id = submit_sentence(stack, clip, callback_url=f"{receiver.url}/hook")
            wait_until(lambda: len(receiver.received("/hook")) == 1, "the event")
            text = json.loads(receiver.received("/hook")[0].body)["data"]["transcript"]["text"]
            wait_until(lambda: [d.state for d in webhooks.for_job(job_id)] == ["delivered"], "the delivered state")
            [stored] = webhooks.for_job(job_id)
            assert text.strip() and text in (stored.payload or "")
            assert requests.delete(stack.url(f"/v1/jobs/{job_id}"), timeout=10).status_code == 200
            assert [d.payload for d in webhooks.for_job(job_id)] == [REDACTED_PAYLOAD]
            response = requests.post(stack.url(f"/v1/jobs/{job_id}/webhooks/redeliver"), timeout=10)
            assert response.status_code == 410, response.text
            assert response.json()["error"] == (f"job {job_id} was deleted; its webhook events are no longer kept"
                                                " and cannot be sent again")
            assert len(receiver.received("/hook")) == 1
    finally:
        engine.dispose()
