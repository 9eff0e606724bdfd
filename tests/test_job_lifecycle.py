"""A job's life has one owner: `shared.jobs` (keys, rows, tasks, webhook queueing, public
JSON, final statuses) and `worker.services.completion` (finishing a worker's job). These tests guard the owners and that
nothing else grows a copy again."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared import redis_keys
from shared.config import Settings
from shared.db.migrate import upgrade_to_head
from shared.db.models import JobStatus, utc_now
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.db.webhooks import WebhookRepository
from shared.jobs.final import EndContext, cancel_job, end_job, fail_job
from shared.jobs.keys import audio_key, transcript_key
from shared.jobs.public import job_to_dict, transcript_to_dict
from shared.jobs.rows import queued_job
from shared.schemas import DELIVER_WEBHOOK_TASK_NAME
from shared.storage.local import LocalStorage
from shared.transcript import Segment, Transcript
from worker.services.completion import FinishContext, finish
from worker.services.webhooks import WebhookContext, build_payload

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def jobs(database_url: str) -> Iterator[JobRepository]:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    yield JobRepository(make_session_factory(engine))
    engine.dispose()


class SentTasks:
    """Records the tasks sent by name (the plumbing under test; the worker is not)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []

    def send_task(self, name: str, args: list[str], **_options: object) -> None:
        self.sent.append((name, args))


def _running_job(jobs: JobRepository, callback_url: str | None = "https://hooks.example.com/x") -> str:
    job_id = uuid.uuid4().hex
    jobs.create(queued_job(job_id, mode="file", queue="cpu", options={}, audio_key=audio_key(job_id),
                           filename="a.wav", size_bytes=1, duration_s=1.0, callback_url=callback_url,
                           api_key_id=None))
    assert jobs.transition(job_id, JobStatus.RUNNING, started_at=utc_now())
    return job_id


def _next_message(pubsub: redis.client.PubSub, deadline_s: float) -> dict | None:  # type: ignore[type-arg]
    """The next published message, skipping the subscription's confirmation; None at the deadline."""
    while time.monotonic() < deadline_s:
        message = pubsub.get_message(timeout=0.5)
        if message is not None:
            return message
    return None


def test_times_come_out_of_the_database_with_their_zone(jobs: JobRepository) -> None:
    """SQLite hands datetimes back naive; the column type makes them UTC, so no caller has to."""
    job_id = _running_job(jobs)
    assert jobs.transition(job_id, JobStatus.SUCCEEDED, finished_at=utc_now())
    job = jobs.get(job_id)
    for moment in (job.created_at, job.started_at, job.finished_at, job.updated_at):
        assert moment is not None and moment.utcoffset() is not None
    [delivery] = WebhookRepository(jobs.session_factory).for_job(job_id)
    assert delivery.created_at.utcoffset() is not None and delivery.next_attempt_at.utcoffset() is not None
    body = job_to_dict(job)
    assert str(body["created_at"]).endswith("+00:00") and str(body["finished_at"]).endswith("+00:00")


def test_the_webhook_carries_the_transcript_json_the_api_shows(jobs: JobRepository, tmp_path: Path) -> None:
    """One transcript JSON for polls and webhooks: the webhook's own copy dropped speaker names."""
    storage = LocalStorage(tmp_path / "storage")
    transcript = Transcript(text="hello there", language="en", duration_s=2.0, segments=[
        Segment(start_s=0.0, end_s=1.0, text="hello", speaker=0, speaker_name="alice", speaker_similarity=0.91),
        Segment(start_s=1.0, end_s=2.0, text="there", speaker=1)])
    job_id = _running_job(jobs)
    storage.put_bytes(transcript_key(job_id), transcript.model_dump_json().encode())
    assert jobs.transition(job_id, JobStatus.SUCCEEDED, transcript_key=transcript_key(job_id), finished_at=utc_now())
    webhooks = WebhookRepository(jobs.session_factory)
    [delivery] = webhooks.for_job(job_id)
    ctx = WebhookContext(settings=Settings(), jobs=jobs, webhooks=webhooks, storage=storage)
    event = json.loads(build_payload(ctx, delivery))
    assert event["data"]["transcript"] == json.loads(json.dumps(transcript_to_dict(transcript)))
    assert event["data"]["transcript"]["segments"][0]["speaker_name"] == "alice"
    assert event["data"]["created_at"].endswith("+00:00")


def test_a_finish_publishes_and_queues_its_webhook_once_and_a_cancel_cleans_up(
        jobs: JobRepository, tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    client = redis.Redis.from_url(redis_server.url)
    storage = LocalStorage(tmp_path / "storage")
    celery = SentTasks()
    ctx = FinishContext(settings=Settings(), jobs=jobs, storage=storage, redis=client, celery=celery)  # type: ignore[arg-type]
    job_id = _running_job(jobs)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(redis_keys.job_events_channel(job_id))
    done = finish(ctx, job_id, JobStatus.SUCCEEDED, progress=1.0)
    assert done.changed and done.status == JobStatus.SUCCEEDED
    message = _next_message(pubsub, deadline_s=time.monotonic() + 10)
    assert message is not None and json.loads(message["data"])["status"] == "succeeded"
    [delivery_id] = WebhookRepository(jobs.session_factory).pending_for_job(job_id)
    assert celery.sent == [(DELIVER_WEBHOOK_TASK_NAME, [delivery_id])]
    again = finish(ctx, job_id, JobStatus.FAILED, error="a late loser")
    assert not again.changed and again.status == JobStatus.SUCCEEDED and len(celery.sent) == 1
    pubsub.close()

    canceled = _running_job(jobs, callback_url=None)
    assert jobs.transition(canceled, JobStatus.CANCELED, finished_at=utc_now())
    storage.put_bytes(transcript_key(canceled), b"{}")  # stored by the worker after the API's clean-up
    lost = finish(ctx, canceled, JobStatus.SUCCEEDED, stored_keys=[transcript_key(canceled)])
    assert not lost.changed and lost.status == JobStatus.CANCELED
    assert not storage.exists(transcript_key(canceled)) and jobs.get(canceled).audio_key is None


#: What only the owner may write, and where the owner is.
OWNED = {
    r'f"audio/\{': {"shared/jobs/keys.py"},
    r'f"transcripts/\{': {"shared/jobs/keys.py"},
    r"(?<!class )(?<!\.)\bJob\(": {"shared/jobs/rows.py"},
    r"TRANSCRIBE_TASK_NAME, args": {"shared/jobs/dispatch.py"},
    r"DELIVER_WEBHOOK_TASK_NAME, args": {"shared/jobs/dispatch.py"},
    r"REPROCESS_SESSION_TASK_NAME, args": {"shared/jobs/dispatch.py"},
    r"\.pending_for_job\(": {"shared/jobs/dispatch.py"},
    r"JobEvent\(job_id": {"shared/jobs/events.py"},
    r"def _iso\b|tzinfo=UTC": {"shared/db/utc.py"},
    r'"speaker_similarity"\]? ?=': {"shared/jobs/public.py"},
    r"record_job_finished\(": {"worker/services/completion.py", "worker/services/metrics.py"},
    # A final status (any transition but to running) and its announcement: shared.jobs.final,
    # for the API's cancel and failures, the worker's completion service and the reconciler.
    r"\.transition\(\s*[\w.]+,(?!\s*JobStatus\.RUNNING\b)": {"shared/jobs/final.py"},
    r"\bpublish_status\(": {"shared/jobs/final.py", "shared/jobs/events.py"},
}
#: Concerns the tests must leave to their owner too (tests/support/job_rows.py builds rows
#: through shared.jobs.rows), so a column every new job gets is set in tests as well.
SCANNED_IN_TESTS = {r"(?<!class )(?<!\.)\bJob\(": {"tests/support/job_rows.py"}}


@pytest.mark.parametrize("pattern", sorted(OWNED))
def test_each_concern_of_a_job_is_written_once(pattern: str) -> None:
    owners = OWNED[pattern] | SCANNED_IN_TESTS.get(pattern, set())
    packages = ("api", "worker", "shared", "tests") if pattern in SCANNED_IN_TESTS else ("api", "worker", "shared")
    writers = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            if re.search(pattern, path.read_text(encoding="utf-8")):
                writers.add(path.relative_to(ROOT).as_posix())
    assert writers <= owners, f"{pattern!r} is written outside its owner: {sorted(writers - owners)}"


def test_the_api_side_ends_a_job_like_the_worker_does(jobs: JobRepository, redis_server) -> None:  # type: ignore[no-untyped-def]
    """A cancel or a failure written by the API (no storage, no worker) publishes and queues its
    webhook exactly as a worker's finish does; a second end, and a status that is not final, do nothing."""
    client = redis.Redis.from_url(redis_server.url)
    celery = SentTasks()
    ctx = EndContext(settings=Settings(), jobs=jobs, redis=client, celery=celery)  # type: ignore[arg-type]
    job_id = _running_job(jobs)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(redis_keys.job_events_channel(job_id))
    with pytest.raises(ValueError, match="not a final status"):
        end_job(ctx, job_id, JobStatus.RUNNING)
    assert cancel_job(ctx, job_id, "canceled by the client")
    message = _next_message(pubsub, deadline_s=time.monotonic() + 10)
    assert message is not None and json.loads(message["data"])["status"] == "canceled"
    [delivery_id] = WebhookRepository(jobs.session_factory).pending_for_job(job_id)
    assert celery.sent == [(DELIVER_WEBHOOK_TASK_NAME, [delivery_id])]
    assert not fail_job(ctx, job_id, "too late") and len(celery.sent) == 1
    assert jobs.get(job_id).error == "canceled by the client"
    pubsub.close()
