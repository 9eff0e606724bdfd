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


class _RetryRecorded(Exception):
    pass


def test_a_job_waiting_for_its_retry_is_not_sent_again_by_the_stale_sweep(worker_runtime: WorkerRuntime) -> None:
    """Between a transient failure and the retry Celery holds back for its countdown, nothing
    touches the running job; the stale sweep took that silence for a dead worker and sent a
    second copy, whose retries then raced the first's (in the many-hosts test a job ran ten
    times through one 30 s S3 outage). The lease now covers the countdown."""
    from datetime import timedelta

    from worker.tasks import _transcribe

    job_id = uuid.uuid4().hex
    worker_runtime.jobs.create(job_row(job_id, audio_key=audio_key(job_id)))
    worker_runtime.storage = _StorageDown()  # type: ignore[assignment]
    countdowns: list[float] = []

    def retry(exc: Exception, countdown: float) -> Exception:
        countdowns.append(countdown)
        return _RetryRecorded()

    task = SimpleNamespace(request=SimpleNamespace(retries=2), retry=retry)
    with pytest.raises(_RetryRecorded):
        _transcribe(task, worker_runtime, job_id)  # type: ignore[arg-type]
    assert countdowns == [8]
    assert worker_runtime.jobs.get(job_id).status == JobStatus.RUNNING
    # Any silence up to now would make a job stale for a sweep with this cutoff; this one's
    # lease runs 8 s ahead of its failure.
    assert worker_runtime.jobs.claim_stale_running(worker_runtime.jobs.db_now() - timedelta(milliseconds=1)) == []
    held_for = worker_runtime.jobs.get(job_id).updated_at - worker_runtime.jobs.db_now()
    assert timedelta(seconds=7) < held_for <= timedelta(seconds=8)
