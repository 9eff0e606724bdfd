"""A job whose worker machine died (row stuck in `running`, no sign of life) is sent to the
queue again by a live worker and finishes, once."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from shared.db.models import Job, JobStatus, utc_now
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.jobs.keys import audio_key
from tests.support.job_rows import job_row
from tests.support.speech import REFERENCE_SENTENCES, synthesize
from tests.support.stack import Stack, running_stack, wait_for_job
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

#: Far above a reaper round (1 s), so that a job touched at the start of a test is still fresh
#: when a round has seen it, however busy the machine; orphans are made 60 s quiet.
STALE_JOB_AFTER_S = 30.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("reaper"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=0, stale_job_after_s=STALE_JOB_AFTER_S, reaper_interval_s=1.0,
                       requeue_queued_after_s=5.0) as running:
        yield running


def orphan_job(stack: Stack, audio: Path, quiet_for_s: float) -> str:
    """A job as a dead machine leaves it: running, its audio stored, its message lost."""
    job_id = uuid.uuid4().hex
    storage_dir = Path(stack.settings.storage_local_dir) / "audio"
    storage_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(audio, storage_dir / job_id)
    jobs = JobRepository(make_session_factory(make_engine(stack.settings.database_url)))
    jobs.create(job_row(job_id, audio_key=audio_key(job_id)))
    jobs.transition(job_id, JobStatus.RUNNING, worker="dead-host:1")
    make_quiet(stack.settings.database_url, job_id, quiet_for_s)
    return job_id


def make_quiet(database_url: str, job_id: str, quiet_for_s: float) -> None:
    """Pretend nothing touched the job for `quiet_for_s`."""
    from sqlalchemy import update

    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(update(Job).where(Job.id == job_id)
                           .values(updated_at=utc_now() - timedelta(seconds=quiet_for_s)))
    engine.dispose()


def test_a_job_left_running_by_a_dead_machine_is_finished_by_a_live_worker(stack: Stack, speech_dir: Path) -> None:
    clip = synthesize(REFERENCE_SENTENCES[5], speech_dir / "reaper.wav")
    job_id = orphan_job(stack, clip, quiet_for_s=60)
    job = wait_for_job(stack, job_id, timeout_s=60)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2 and job["worker"] != "dead-host:1"
    assert "sending it to cpu again" in stack.log_tail("worker-file", 200)


def test_a_queued_job_whose_message_was_lost_is_finished(stack: Stack, speech_dir: Path) -> None:
    """As after Redis died holding the job's message: the row says queued, no queue has it."""
    clip = synthesize(REFERENCE_SENTENCES[4], speech_dir / "reaper-queued.wav")
    job_id = uuid.uuid4().hex
    storage_dir = Path(stack.settings.storage_local_dir) / "audio"
    storage_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(clip, storage_dir / job_id)
    jobs = JobRepository(make_session_factory(make_engine(stack.settings.database_url)))
    jobs.create(job_row(job_id, audio_key=audio_key(job_id)))
    make_quiet(stack.settings.database_url, job_id, 60)
    job = wait_for_job(stack, job_id, timeout_s=60)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1
    assert "no worker started it" in stack.log_tail("worker-file", 200)


def test_a_session_owed_its_reprocessing_is_reprocessed_through_the_copy_task(stack: Stack,
                                                                             speech_dir: Path) -> None:
    """A live session whose worker died before queueing its reprocessing: a worker's
    reconciler claims it and sends the copy task, which a worker runs (the real task, by
    name, on the file queue); the file job is made from the stored recording and finishes."""
    from shared.reprocess import reprocess_job_id

    clip = synthesize(REFERENCE_SENTENCES[3], speech_dir / "reaper-reprocess.wav")
    session_id = uuid.uuid4().hex
    storage_dir = Path(stack.settings.storage_local_dir) / "audio"
    storage_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(clip, storage_dir / session_id)
    jobs = JobRepository(make_session_factory(make_engine(stack.settings.database_url)))
    jobs.create(job_row(session_id, status=JobStatus.SUCCEEDED, mode="stream",
                        options={"language": "en", "reprocess": "offline"}, audio_key=audio_key(session_id),
                        filename="standup", duration_s=3.0, progress=1.0, attempts=1,
                        finished_at=utc_now() - timedelta(seconds=120)))
    child_id = reprocess_job_id(session_id)
    wait_until(lambda: jobs.find(child_id), "the reprocessing job to be made", timeout_s=60)
    job = wait_for_job(stack, child_id, timeout_s=120)
    assert job["status"] == "succeeded", job
    assert job["options"]["source_job_id"] == session_id and job["result"]["text"].strip()
    log = stack.log_tail("worker-file", 10**6)
    assert f"live session {session_id} never had its reprocessing queued; sent it to cpu" in log
    assert f"live session {session_id} never had its reprocessing queued; queued as {child_id}" in log


def test_a_recently_active_running_job_is_left_alone(stack: Stack, speech_dir: Path) -> None:
    clip = synthesize(REFERENCE_SENTENCES[6], speech_dir / "reaper2.wav")
    job_id = orphan_job(stack, clip, quiet_for_s=0)
    # A stale neighbour, made after it: once a round has sent the neighbour again, that round
    # (or a later one) has seen the fresh job too, long before its silence reached the limit.
    neighbour_id = orphan_job(stack, clip, quiet_for_s=60)
    wait_until(lambda: f"job {neighbour_id} has had no sign of life" in stack.log_tail("worker-file", 10**6),
               "a reaper round to send the stale neighbour again", timeout_s=60)
    stack_jobs = JobRepository(make_session_factory(make_engine(stack.settings.database_url)))
    assert stack_jobs.get(job_id).status == JobStatus.RUNNING
    assert stack_jobs.get(job_id).attempts == 1
    assert wait_for_job(stack, neighbour_id, timeout_s=120)["status"] == "succeeded"


def running_job_in_fresh_db(tmp_path: Path, queue: str) -> tuple[JobRepository, str, str]:
    from shared.db.migrate import upgrade_to_head

    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    upgrade_to_head(url)
    jobs = JobRepository(make_session_factory(make_engine(url)))
    job_id = uuid.uuid4().hex
    jobs.create(job_row(job_id, queue=queue))
    jobs.transition(job_id, JobStatus.RUNNING)
    return jobs, url, job_id


def test_concurrent_reapers_claim_each_stale_job_once(tmp_path: Path) -> None:
    import threading

    jobs, url, job_id = running_job_in_fresh_db(tmp_path, "gpu")
    make_quiet(url, job_id, 60)
    cutoff = utc_now() - timedelta(seconds=30)
    claims: list[list[tuple[str, str]]] = []
    barrier = threading.Barrier(6)

    def reap() -> None:
        barrier.wait()
        claims.append(jobs.claim_stale_running(cutoff))

    threads = [threading.Thread(target=reap) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claims, key=len)[-1] == [(job_id, "gpu")]
    assert sum(len(claim) for claim in claims) == 1
    assert jobs.claim_stale_running(utc_now() - timedelta(seconds=30)) == []
    with pytest.raises(ValueError, match="past"):
        jobs.claim_stale_running(utc_now() + timedelta(seconds=5))


def test_a_slow_job_keeps_its_lease_while_the_engine_reports_nothing(tmp_path: Path) -> None:
    """The worker side: a lease thread touches the row, so a long silent engine call is not
    mistaken for a dead worker."""
    from types import SimpleNamespace

    from shared.config import Settings
    from worker.services.transcription import JobLease

    jobs, _url, job_id = running_job_in_fresh_db(tmp_path, "cpu")
    runtime = SimpleNamespace(jobs=jobs, settings=Settings(data_dir=tmp_path, stale_job_after_s=4.0))
    started_at = jobs.get(job_id).updated_at
    touches = [started_at]

    def touched_twice() -> bool:
        if (updated_at := jobs.get(job_id).updated_at) != touches[-1]:
            touches.append(updated_at)
        return len(touches) > 2

    with JobLease(runtime, job_id):  # type: ignore[arg-type]
        # The "engine" is busy and reports nothing; the lease touches the row every second.
        wait_until(touched_twice, "the lease to touch the row twice", timeout_s=60)
        # Quiet since before the latest touch: without the lease the row would be (it was
        # last written when the job started); with it, the reaper leaves it alone.
        latest = touches[-1] if touches[-1].tzinfo else touches[-1].replace(tzinfo=UTC)
        assert jobs.claim_stale_running(latest) == []
    # Once the lease ends, nothing touches the row: it goes stale.
    wait_until(lambda: jobs.claim_stale_running(utc_now() - timedelta(seconds=2)) == [(job_id, "cpu")],
               "the job to go stale after its lease ended", timeout_s=60, interval_s=0.5)
