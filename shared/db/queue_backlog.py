"""The database's side of queue estimates: what waits and what runs on each queue.

Every query here is answered by the (queue, status, created_at, id, audio_duration_s) index
of migration 0007, so a position deep in a backlog of thousands costs an index range count,
never a scan of the table or of the Redis queue (a Celery queue in Redis cannot say where a
message stands without reading the whole list).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import Job, JobStatus, utc_now
from shared.queue_eta import RunningJob


@dataclass(frozen=True)
class Backlog:
    """Queued jobs and their audio: what a queue (or the part of it ahead of a job) holds."""

    jobs: int
    audio_s: float


EMPTY = Backlog(0, 0.0)


def running_job(audio_s: float | None, progress: float | None, started_at: datetime | None,
                now: datetime | None = None) -> RunningJob:
    """A running job's row as the estimate needs it: how long it has run, how far it got."""
    elapsed_s = max(0.0, ((now or utc_now()) - started_at).total_seconds()) if started_at else 0.0
    return RunningJob(audio_s=float(audio_s or 0.0), elapsed_s=elapsed_s, progress=float(progress or 0.0))


class QueueBacklogRepository:
    """Read-only questions about queues, on the jobs table of `JobRepository`'s database."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def ahead_of(self, job: Job) -> Backlog:
        """Queued jobs of the job's queue sent before it (created earlier; the id breaks ties,
        so two jobs created in the same microsecond still get distinct positions)."""
        with self._session_factory() as session:
            row = session.execute(
                select(func.count(), func.coalesce(func.sum(Job.audio_duration_s), 0.0))
                .where(Job.queue == job.queue, Job.status == JobStatus.QUEUED,
                       tuple_(Job.created_at, Job.id) < tuple_(job.created_at, job.id))
            ).one()
        return Backlog(int(row[0]), float(row[1]))

    def queued(self, queue: str) -> Backlog:
        with self._session_factory() as session:
            row = session.execute(
                select(func.count(), func.coalesce(func.sum(Job.audio_duration_s), 0.0))
                .where(Job.queue == queue, Job.status == JobStatus.QUEUED)
            ).one()
        return Backlog(int(row[0]), float(row[1]))

    def running(self, queue: str, now: datetime | None = None) -> list[RunningJob]:
        """The queue's running jobs, each with how long it has run and its progress."""
        now = now or utc_now()
        with self._session_factory() as session:
            rows = session.execute(
                select(Job.audio_duration_s, Job.progress, Job.started_at)
                .where(Job.queue == queue, Job.status == JobStatus.RUNNING)
            ).all()
        return [running_job(audio_s, progress, started_at, now) for audio_s, progress, started_at in rows]
