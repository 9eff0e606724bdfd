"""The webhook outbox: an event is written with the final status, in its transaction, once;
deliveries are claimed by one sender; the reconciler resends what is due. SQLite and a real
PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

import shared.db.repository as repository_module
from shared.config import Settings
from shared.db.migrate import upgrade_to_head
from shared.db.models import DeliveryState, JobStatus, utc_now
from shared.db.repository import STREAM_MODE, JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.db.webhooks import WebhookRepository
from shared.storage.local import LocalStorage
from shared.transcript import Segment, Transcript
from tests.support.job_rows import job_row
from worker.services.reaper import ReconcileContext, resend_due_webhooks
from worker.services.webhooks import WebhookContext, build_payload, next_delay_s


@pytest.fixture
def repos(database_url: str) -> Iterator[tuple[JobRepository, WebhookRepository]]:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    yield JobRepository(factory), WebhookRepository(factory)
    engine.dispose()


def running_job(jobs: JobRepository, callback_url: str | None = "https://hooks.example.com/x",
                mode: str = "file") -> str:
    job_id = uuid.uuid4().hex
    jobs.create(job_row(job_id, mode=mode, callback_url=callback_url))
    assert jobs.transition(job_id, JobStatus.RUNNING)
    return job_id


def test_final_status_writes_one_event_with_a_webhook_id(repos: tuple[JobRepository, WebhookRepository]) -> None:
    jobs, webhooks = repos
    job_id = running_job(jobs)
    assert webhooks.for_job(job_id) == []  # running is not final
    assert jobs.transition(job_id, JobStatus.SUCCEEDED, finished_at=utc_now())
    assert not jobs.transition(job_id, JobStatus.FAILED)  # the loser of a race writes no event
    [delivery] = webhooks.for_job(job_id)
    assert delivery.event_type == "job.succeeded" and delivery.state == DeliveryState.PENDING
    assert delivery.id.startswith("msg_") and delivery.url == "https://hooks.example.com/x"
    assert webhooks.pending_for_job(job_id) == [delivery.id]


def test_no_callback_no_event_and_live_sessions_end_as_stream_ended(
        repos: tuple[JobRepository, WebhookRepository]) -> None:
    jobs, webhooks = repos
    silent = running_job(jobs, callback_url=None)
    assert jobs.transition(silent, JobStatus.CANCELED)
    assert webhooks.for_job(silent) == []
    stream = running_job(jobs, mode=STREAM_MODE)
    assert jobs.transition(stream, JobStatus.FAILED, error="worker gone")
    assert [d.event_type for d in webhooks.for_job(stream)] == ["stream.ended"]


def test_status_and_event_share_one_transaction(repos: tuple[JobRepository, WebhookRepository],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """If the event cannot be written, neither is the final status (and the reverse)."""
    jobs, webhooks = repos
    job_id = running_job(jobs)

    def broken(*_args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(repository_module, "record_final_event", broken)
    with pytest.raises(RuntimeError):
        jobs.transition(job_id, JobStatus.SUCCEEDED)
    assert jobs.get(job_id).status == JobStatus.RUNNING
    assert webhooks.for_job(job_id) == []


def test_one_sender_holds_a_delivery_and_redelivery_keeps_its_id(
        repos: tuple[JobRepository, WebhookRepository]) -> None:
    jobs, webhooks = repos
    job_id = running_job(jobs)
    jobs.transition(job_id, JobStatus.FAILED, error="bad audio")
    [delivery] = webhooks.for_job(job_id)
    claim = webhooks.claim(delivery.id, hold_s=60)
    assert claim is not None
    assert webhooks.claim(delivery.id, hold_s=60) is None  # held
    assert not webhooks.redeliver(delivery.id)  # not while an attempt is in flight
    assert webhooks.fix_payload(delivery.id, "first") == "first"
    assert webhooks.fix_payload(delivery.id, "second") == "first"  # the body is fixed once
    attempt = {"at": "now", "status_code": 500, "error": None, "duration_ms": 3.0}
    assert webhooks.finish_attempt(claim, attempt, DeliveryState.PENDING, 3600.0)
    assert webhooks.claim(delivery.id, hold_s=60) is None  # not due yet
    assert webhooks.due(utc_now()) == []
    assert webhooks.redeliver(delivery.id)
    again = webhooks.claim(delivery.id, hold_s=60)
    assert again is not None and again.delivery.id == delivery.id and again.delivery.schedule_step == 0
    assert not webhooks.finish_attempt(claim, attempt, DeliveryState.FAILED, None)  # a stale claim writes nothing
    assert webhooks.finish_attempt(again, {**attempt, "status_code": 200}, DeliveryState.DELIVERED, None)
    [done] = webhooks.for_job(job_id)
    assert done.state == DeliveryState.DELIVERED
    assert [a["status_code"] for a in done.attempts] == [500, 200]


def test_reconciler_resends_due_deliveries(repos: tuple[JobRepository, WebhookRepository]) -> None:
    jobs, webhooks = repos
    job_id = running_job(jobs)
    jobs.transition(job_id, JobStatus.SUCCEEDED)
    [delivery] = webhooks.for_job(job_id)
    sent: list[tuple[str, list[str], str]] = []
    app = SimpleNamespace(send_task=lambda name, args, queue, countdown=None: sent.append((name, args, queue)))
    ctx = ReconcileContext(settings=Settings(webhook_sweep_after_s=3600.0), jobs=jobs, app=app,  # type: ignore[arg-type]
                           redis=None)  # type: ignore[arg-type]
    assert resend_due_webhooks(ctx) == []  # just due: its own task is on the way
    ctx = ReconcileContext(settings=Settings(webhook_sweep_after_s=0.0), jobs=jobs, app=app,  # type: ignore[arg-type]
                           redis=None)  # type: ignore[arg-type]
    assert resend_due_webhooks(ctx) == [delivery.id]
    assert sent == [("oddasr.deliver_webhook", [delivery.id], "webhooks")]  # never a model worker's queue


def test_payload_inlines_small_transcripts_links_large_ones_and_carries_stream_sentences(
        repos: tuple[JobRepository, WebhookRepository], tmp_path: Path) -> None:
    jobs, webhooks = repos
    storage = LocalStorage(tmp_path / "storage")
    transcript = Transcript(text="hello world", segments=[Segment(start_s=0.0, end_s=1.0, text="hello world")],
                            language="en", duration_s=1.0)
    job_id = running_job(jobs)
    storage.put_bytes(f"transcripts/{job_id}.json", transcript.model_dump_json().encode())
    jobs.transition(job_id, JobStatus.SUCCEEDED, transcript_key=f"transcripts/{job_id}.json", finished_at=utc_now())
    [delivery] = webhooks.for_job(job_id)

    def payload(settings: Settings, delivery_id: str) -> dict:
        ctx = WebhookContext(settings=settings, jobs=jobs, webhooks=webhooks, storage=storage)
        return json.loads(build_payload(ctx, webhooks.get(delivery_id)))  # type: ignore[arg-type]

    event = payload(Settings(webhook_link_base_url="https://asr.example.com/"), delivery.id)
    assert event["type"] == "job.succeeded"
    assert event["data"]["transcript"]["text"] == "hello world"
    assert event["data"]["links"]["transcript"] == f"https://asr.example.com/v1/jobs/{job_id}/transcript?format=json"
    event = payload(Settings(webhook_max_inline_bytes=10), delivery.id)
    assert event["data"]["transcript"] is None and event["data"]["transcript_too_large"] is True
    assert event["data"]["links"]["transcript"] == f"/v1/jobs/{job_id}/transcript?format=json"

    stream_id = running_job(jobs, mode=STREAM_MODE)
    jobs.add_stream_segment(stream_id, 0, 0, 1200, "first sentence")
    jobs.add_stream_segment(stream_id, 1, 1200, 2500, "second one")
    jobs.transition(stream_id, JobStatus.SUCCEEDED, finished_at=utc_now())
    [ended] = webhooks.for_job(stream_id)
    event = payload(Settings(), ended.id)
    assert event["type"] == "stream.ended"
    assert event["data"]["transcript"]["text"] == "first sentence second one"
    assert [s["end"] for s in event["data"]["transcript"]["segments"]] == [1.2, 2.5]


def test_retry_delays_follow_the_schedule_with_jitter_then_stop() -> None:
    settings = Settings(webhook_retry_schedule_s=[5.0, 300.0], webhook_retry_jitter_fraction=0.1)
    delays_s = [next_delay_s(settings, 0) for _ in range(200)]
    assert all(4.5 <= d <= 5.5 for d in delays_s) and len(set(delays_s)) > 100
    assert 270.0 <= (next_delay_s(settings, 1) or 0) <= 330.0
    assert next_delay_s(settings, 2) is None
