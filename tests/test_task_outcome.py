"""What Celery (and so Flower) records for a job: a failed job's task ends in FAILURE, without
a retry, and a task's id is its job's id, so an operator finds a job in Flower by its id."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from shared.config import Settings
from shared.db.migrate import upgrade_to_head
from shared.db.models import JobStatus
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.jobs.keys import audio_key
from shared.storage import make_storage
from tests.support.job_rows import job_row
from worker.services import runtime as runtime_module
from worker.services.runtime import WorkerRuntime


@pytest.fixture
def worker_runtime(tmp_path: Path, redis_server) -> Iterator[WorkerRuntime]:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path, redis_url=redis_server.url)
    upgrade_to_head(settings.database_url)
    engine = make_engine(settings.database_url)
    runtime = WorkerRuntime(settings=settings, jobs=JobRepository(make_session_factory(engine)),
                            storage=make_storage(settings), redis=redis.Redis.from_url(redis_server.url),
                            engine=SimpleNamespace(name="unused"), identity="test:1")  # type: ignore[arg-type]
    previous = runtime_module._current
    runtime_module._current = runtime
    yield runtime
    runtime_module._current = previous
    engine.dispose()


def test_a_failed_job_ends_its_task_in_failure_without_a_retry(worker_runtime: WorkerRuntime) -> None:
    from worker.tasks import JobFailed, transcribe

    job_id = uuid.uuid4().hex
    worker_runtime.jobs.create(job_row(job_id, audio_key=audio_key(job_id)))  # its audio is missing
    result = transcribe.apply(args=[job_id], task_id=job_id)
    assert result.state == "FAILURE"
    assert isinstance(result.result, JobFailed) and "missing" in str(result.result)
    job = worker_runtime.jobs.get(job_id)
    assert job.status == JobStatus.FAILED and job.attempts == 1


def test_a_job_that_is_already_finished_ends_its_task_quietly(worker_runtime: WorkerRuntime) -> None:
    """A redelivered duplicate of a finished job is not a failure: nothing was done twice."""
    from worker.tasks import transcribe

    job_id = uuid.uuid4().hex
    worker_runtime.jobs.create(job_row(job_id))
    worker_runtime.jobs.transition(job_id, JobStatus.CANCELED)
    assert transcribe.apply(args=[job_id], task_id=job_id).state == "SUCCESS"


def test_the_queued_task_carries_the_job_id_as_its_id(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    from api.app import create_app
    from tests.test_api_validation import make_settings, post, wav_bytes

    url = redis_server.url.rsplit("/", 1)[0] + "/8"
    client = redis.Redis.from_url(url)
    client.flushdb()
    with create_app(make_settings(tmp_path, url)).test_client() as api:
        job_id = post(api, wav_bytes(1.0)).get_json()["id"]
    messages = [json.loads(raw) for raw in client.lrange("cpu", 0, -1)]
    assert [m["headers"]["id"] for m in messages] == [job_id]
    client.flushdb()


class _StorageDown:
    """Storage whose backend is unreachable: every read fails as S3 does when it is down."""

    def download_to(self, key: str, path: Path) -> None:
        from shared.errors import StorageError

        raise StorageError(f"S3 download of {key} failed: could not connect to the endpoint URL")


class _StorageDownThenMissing(_StorageDown):
    """Storage that is down for the first `down_for` reads, then up without the audio."""

    def __init__(self, down_for: int) -> None:
        self.reads = 0
        self.down_for = down_for

    def download_to(self, key: str, path: Path) -> None:
        from shared.storage import StorageKeyNotFound

        self.reads += 1
        if self.reads <= self.down_for:
            super().download_to(key, path)
        raise StorageKeyNotFound(key)


def test_an_outage_is_waited_out_inside_the_task_under_the_jobs_lease(worker_runtime: WorkerRuntime) -> None:
    """A transient failure is tried again after a wait inside the task, on this worker's clock:
    Celery's retry countdown became an ETA on the sending host's clock, so across hosts whose
    clocks differ a retry ran at once and the budget was spent inside one 30 s S3 outage. Each
    wait is covered by the job's lease, so the stale sweep sends no second copy meanwhile (in
    the many-hosts test a job ran ten times through one outage)."""
    from datetime import timedelta

    from worker.tasks import JobFailed, _transcribe

    job_id = uuid.uuid4().hex
    worker_runtime.jobs.create(job_row(job_id, audio_key=audio_key(job_id)))
    worker_runtime.storage = _StorageDownThenMissing(down_for=2)  # type: ignore[assignment]
    waits: list[float] = []

    def sleep(wait_s: float) -> None:
        waits.append(wait_s)
        job = worker_runtime.jobs.get(job_id)
        assert job.status == JobStatus.RUNNING
        # Any silence up to now would make a job stale for a sweep with this cutoff; this
        # one's lease runs the wait ahead of its failure.
        assert worker_runtime.jobs.claim_stale_running(worker_runtime.jobs.db_now() - timedelta(milliseconds=1)) == []
        held_for = job.updated_at - worker_runtime.jobs.db_now()
        assert timedelta(seconds=wait_s / 2) < held_for <= timedelta(seconds=wait_s)

    with pytest.raises(JobFailed, match="missing"):  # storage came back, without the audio
        _transcribe(worker_runtime, job_id, sleep=sleep)
    assert waits == [2.0, 4.0]
    assert worker_runtime.storage.reads == 3  # type: ignore[attr-defined]
    job = worker_runtime.jobs.get(job_id)
    assert job.status == JobStatus.FAILED and "missing" in (job.error or "")


def test_an_outage_longer_than_every_wait_fails_the_job_saying_so(worker_runtime: WorkerRuntime,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Through Celery itself: the task never asks Celery for a retry (no RETRY state, no ETA
    message); once every wait is spent the job fails with the outage's reason."""
    from worker import tasks

    job_id = uuid.uuid4().hex
    worker_runtime.jobs.create(job_row(job_id, audio_key=audio_key(job_id)))
    worker_runtime.storage = _StorageDown()  # type: ignore[assignment]
    waits: list[float] = []
    monkeypatch.setattr(tasks, "_wait", waits.append)
    result = tasks.transcribe.apply(args=[job_id], task_id=job_id)
    assert result.state == "FAILURE"
    assert isinstance(result.result, tasks.JobFailed)
    assert waits == list(tasks.TRANSIENT_RETRY_WAITS_S)
    job = worker_runtime.jobs.get(job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error.startswith("gave up after 5 retries over 62 s: S3 download")


def test_a_non_transient_error_is_never_waited_on() -> None:
    from shared.errors import NotSupportedError
    from worker.tasks import with_transient_retries

    waits: list[float] = []

    def attempt() -> None:
        raise NotSupportedError("no such model")

    with pytest.raises(NotSupportedError):
        with_transient_retries("job x", attempt, lambda _wait_s: None, waits.append)
    assert waits == []


def test_an_enrollment_through_a_long_outage_fails_saying_so(worker_runtime: WorkerRuntime) -> None:
    from shared.db.models import SpeakerStatus
    from shared.db.speakers import SpeakerRepository
    from worker.tasks import TRANSIENT_RETRY_WAITS_S, _enroll_speaker

    worker_runtime.engine = SimpleNamespace(name="funasr", speaker_model="campplus",  # type: ignore[assignment]
                                            embed_speaker=lambda clip: None)
    worker_runtime.storage = _StorageDown()  # type: ignore[assignment]
    speakers = SpeakerRepository(worker_runtime.jobs.session_factory)
    row = speakers.create("", "alice", ["speakers/x/0"], 6.0)
    waits: list[float] = []
    _enroll_speaker(worker_runtime, row.id, sleep=waits.append)
    assert waits == list(TRANSIENT_RETRY_WAITS_S)
    failed = speakers.find(row.id)
    assert failed is not None and failed.status == SpeakerStatus.FAILED
    assert (failed.error or "").startswith("gave up after 5 retries over 62 s: S3 download")


def test_a_job_canceled_during_an_outage_is_not_waited_for(worker_runtime: WorkerRuntime) -> None:
    """The user cancels while storage is down: the task does not sleep out a wait (up to 32 s
    of a worker held) for a job that is over; its next try finds it canceled and ends."""
    from worker.tasks import _transcribe

    job_id = uuid.uuid4().hex
    worker_runtime.jobs.create(job_row(job_id, audio_key=audio_key(job_id)))

    class _CanceledThenDown(_StorageDown):
        def download_to(self, key: str, path: Path) -> None:
            worker_runtime.jobs.transition(job_id, JobStatus.CANCELED)
            super().download_to(key, path)

    worker_runtime.storage = _CanceledThenDown()  # type: ignore[assignment]
    waits: list[float] = []
    _transcribe(worker_runtime, job_id, sleep=waits.append)  # no failure: the job was canceled
    assert waits == []
    assert worker_runtime.jobs.get(job_id).status == JobStatus.CANCELED
