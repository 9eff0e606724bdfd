"""Retention: finished jobs lose their audio and transcript after the configured days and keep
their row and status; audio may go sooner; 0 keeps forever; unfinished jobs are never touched."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from api.job_service import load_transcript
from shared.config import Settings
from shared.db.migrate import upgrade_to_head
from shared.db.models import JobStatus, utc_now
from shared.db.repository import STREAM_MODE, JobRepository
from shared.db.retention import RetentionRepository
from shared.db.session import make_engine, make_session_factory
from shared.errors import GoneError
from shared.jobs.keys import audio_key
from shared.jobs.public import job_to_dict
from shared.storage.local import LocalStorage
from shared.transcript import Transcript
from tests.support.job_rows import job_row
from worker.services.reaper import ReconcileContext, expire_retained_data
from worker.services.retention import expire_old_data


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[JobRepository]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    yield JobRepository(make_session_factory(engine))
    engine.dispose()


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


def finished_job(jobs: JobRepository, storage: LocalStorage, age_days: float, status: JobStatus = JobStatus.SUCCEEDED,
                 mode: str = "file") -> str:
    job_id = uuid.uuid4().hex
    storage.put_bytes(f"audio/{job_id}", b"RIFF")
    jobs.create(job_row(job_id, mode=mode, audio_key=audio_key(job_id)))
    jobs.transition(job_id, JobStatus.RUNNING)
    finished_at = utc_now() - timedelta(days=age_days)
    if status == JobStatus.SUCCEEDED:
        key = f"transcripts/{job_id}.json"
        storage.put_bytes(key, Transcript(text="hi").model_dump_json().encode())
        jobs.transition(job_id, status, transcript_key=key, finished_at=finished_at)
    else:
        jobs.transition(job_id, status, finished_at=finished_at)
    return job_id


def test_old_jobs_lose_their_data_and_keep_row_and_status(jobs: JobRepository, storage: LocalStorage) -> None:
    old = finished_job(jobs, storage, age_days=31)
    old_failed = finished_job(jobs, storage, age_days=40, status=JobStatus.FAILED)
    young = finished_job(jobs, storage, age_days=29)
    running_id = uuid.uuid4().hex
    jobs.create(job_row(running_id, audio_key="audio/running"))
    storage.put_bytes("audio/running", b"RIFF")
    retention = RetentionRepository(jobs.session_factory)
    assert expire_old_data(Settings(retention_days=30), retention, storage) == sorted([old, old_failed])
    assert expire_old_data(Settings(retention_days=30), retention, storage) == []  # once
    for job_id, status in ((old, "succeeded"), (old_failed, "failed")):
        job = jobs.get(job_id)
        assert job.status == status and job.data_expired_at is not None
        assert job.audio_key is None and job.transcript_key is None
        assert not storage.exists(f"audio/{job_id}") and not storage.exists(f"transcripts/{job_id}.json")
        assert job_to_dict(job)["data_expired_at"]
    assert storage.exists(f"audio/{young}") and storage.exists(f"transcripts/{young}.json")
    assert storage.exists("audio/running")
    deps = SimpleNamespace(settings=Settings(retention_days=30), storage=storage)
    with pytest.raises(GoneError, match="expired"):
        load_transcript(deps, jobs.get(old))  # type: ignore[arg-type]


def test_audio_can_go_sooner_and_zero_keeps_forever(jobs: JobRepository, storage: LocalStorage) -> None:
    job_id = finished_job(jobs, storage, age_days=3)
    retention = RetentionRepository(jobs.session_factory)
    assert expire_old_data(Settings(retention_days=0), retention, storage) == []
    assert expire_old_data(Settings(retention_days=30, audio_retention_days=0), retention, storage) == []
    assert expire_old_data(Settings(retention_days=30, audio_retention_days=2), retention, storage) == [job_id]
    job = jobs.get(job_id)
    assert job.audio_key is None and job.transcript_key and job.data_expired_at is None
    assert not storage.exists(f"audio/{job_id}") and storage.exists(f"transcripts/{job_id}.json")


def test_reconciler_sweep_expires_live_session_sentences(jobs: JobRepository, storage: LocalStorage) -> None:
    job_id = finished_job(jobs, storage, age_days=2, mode=STREAM_MODE)
    jobs.add_stream_segment(job_id, 0, 0, 1000, "a sentence")
    ctx = ReconcileContext(settings=Settings(retention_days=1), jobs=jobs, app=None,  # type: ignore[arg-type]
                           redis=None, storage=storage)  # type: ignore[arg-type]
    assert expire_retained_data(ctx) == [job_id]
    assert jobs.stream_segments(job_id) == []
    assert jobs.get(job_id).status == JobStatus.SUCCEEDED
