"""Job persistence. `transition` is the one function that writes a job's status.

Every status change is a conditional UPDATE (`WHERE status IN allowed_sources`), so two
processes racing (a worker finishing while a client cancels, a redelivered task running
twice) cannot both win: the loser sees `False` and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from shared.db.clock import db_now, read_db_now
from shared.db.models import TERMINAL_STATUSES, Job, JobStatus, StreamSegment
from shared.db.webhooks import record_final_event, redact_payloads
from shared.errors import InvalidTransitionError, NotFoundError
from shared.transcript import Segment, Word

logger = logging.getLogger(__name__)

#: The mode of jobs made from live sessions: they are never sent to a queue (there is no file
#: to transcribe again); a live session whose worker and API both vanished is failed instead.
STREAM_MODE = "stream"

#: target status -> the statuses it may be reached from.
ALLOWED_SOURCES: dict[JobStatus, frozenset[JobStatus]] = {
    # running -> running is a redelivery after a worker died mid-job.
    JobStatus.RUNNING: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.SUCCEEDED: frozenset({JobStatus.RUNNING}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.CANCELED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.QUEUED: frozenset(),
}

#: Columns a transition may set along with the status.
_TRANSITION_FIELDS = frozenset(
    {"error", "transcript_key", "worker", "started_at", "finished_at", "progress", "engine",
     "audio_duration_s", "processing_s", "audio_size_bytes", "hotword_hits"}
)


class JobRepository:
    """Reads and writes jobs; each method is its own short transaction."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def create(self, job: Job) -> Job:
        with self._session_factory.begin() as session:
            session.add(job)
        return job

    def get(self, job_id: str, owner_id: str | None = None) -> Job:
        """The job, or 404. With `owner_id`, another key's job is 404 too, in the very same
        words, so a tenant cannot tell someone else's job from a missing one."""
        job = self.find(job_id, owner_id)
        if job is None:
            raise NotFoundError(f"job {job_id[:64]} not found")
        return job

    def find(self, job_id: str, owner_id: str | None = None) -> Job | None:
        with self._session_factory() as session:
            job = session.get(Job, job_id) if len(job_id) <= 32 else None
            if job is None or (owner_id is not None and job.api_key_id != owner_id):
                return None
            return job

    def list(self, *, status: str | None, limit: int, offset: int,
             owner_id: str | None = None) -> tuple[Sequence[Job], int]:
        """Newest first, with the total count for pagination; only `owner_id`'s jobs if given."""
        with self._session_factory() as session:
            query = select(Job)
            count_query = select(func.count()).select_from(Job)
            if owner_id is not None:
                query = query.where(Job.api_key_id == owner_id)
                count_query = count_query.where(Job.api_key_id == owner_id)
            if status:
                query = query.where(Job.status == status)
                count_query = count_query.where(Job.status == status)
            query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit).offset(offset)
            return session.scalars(query).all(), int(session.scalar(count_query) or 0)

    def count_in_flight(self, owner_id: str) -> int:
        """A key's jobs queued or running (live sessions included): its concurrency."""
        with self._session_factory() as session:
            return int(session.scalar(
                select(func.count()).select_from(Job)
                .where(Job.api_key_id == owner_id, Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)))
            ) or 0)

    def count_live_sessions(self, owner_id: str) -> int:
        """A key's live sessions: its stream jobs still running (a dropped one that its worker
        holds for a resume included: it still holds a slot)."""
        with self._session_factory() as session:
            return int(session.scalar(
                select(func.count()).select_from(Job)
                .where(Job.api_key_id == owner_id, Job.mode == STREAM_MODE, Job.status == JobStatus.RUNNING)
            ) or 0)

    def count_queued_by_queue(self) -> dict[str, int]:
        """Jobs waiting for a worker, per queue: the backlog /metrics reports (one query on
        the indexed status column, cheap at scrape time)."""
        with self._session_factory() as session:
            rows = session.execute(
                select(Job.queue, func.count()).where(Job.status == JobStatus.QUEUED).group_by(Job.queue)
            ).all()
        return {str(queue): int(count) for queue, count in rows}

    def transition(self, job_id: str, target: JobStatus, **fields: Any) -> bool:
        """Move a job to `target` if the transition table allows it from its current status.

        Returns False when the job is in a status the target cannot be reached from (the
        caller lost a race or the job already finished); raises for unknown columns. A final
        status of a job with a callback URL records its webhook event in the same transaction
        (the outbox), so there is never a final status without its event, or the reverse.
        """
        unknown = set(fields) - _TRANSITION_FIELDS
        if unknown:
            raise InvalidTransitionError(f"transition cannot set {sorted(unknown)}")
        sources = ALLOWED_SOURCES[target]
        if not sources:
            raise InvalidTransitionError(f"no transition leads to {target}")
        values: dict[str, Any] = {"status": target, "updated_at": db_now(), **fields}
        if target == JobStatus.RUNNING:
            values["attempts"] = Job.attempts + 1
        with self._session_factory.begin() as session:
            result = session.execute(
                update(Job).where(Job.id == job_id, Job.status.in_([s.value for s in sources])).values(**values)
            )
            changed = result.rowcount == 1
            if changed and target in TERMINAL_STATUSES:
                record_final_event(session, job_id, target, STREAM_MODE)
        if changed:
            logger.info("job %s -> %s", job_id, target.value)
        return changed

    def db_now(self) -> datetime:
        """The database's clock, the one every lease and cutoff is measured on (hosts' clocks
        differ): callers derive their `stale_before` from it."""
        with self._session_factory() as session:
            return read_db_now(session)

    @property
    def session_factory(self) -> sessionmaker[Session]:
        """For the repositories of related tables (webhook deliveries) on the same database."""
        return self._session_factory

    def set_progress(self, job_id: str, progress: float) -> bool:
        """Record progress of a running job; False once it is no longer running (canceled)."""
        with self._session_factory.begin() as session:
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
                .values(progress=progress, updated_at=db_now())
            )
            return result.rowcount == 1

    def hold_for_retry(self, job_id: str, wait_s: float) -> bool:
        """Stretch a running job's lease over the wait before its task's retry: its sign of life
        is stamped `wait_s` ahead, so the stale sweep (which re-sends a job silent for
        `stale_job_after_s`) leaves it to the retry that is coming instead of sending a second
        copy, whose own retries would race the first's (a job ran ten times for one 30 s
        storage outage, and either copy giving up failed it). False once it is no longer running."""
        with self._session_factory.begin() as session:
            result = session.execute(
                update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING)
                .values(updated_at=db_now(wait_s))
            )
            return result.rowcount == 1

    def touch_running(self, job_id: str) -> bool:
        """Show the job is alive (its worker holds it); False once it is no longer running."""
        with self._session_factory.begin() as session:
            result = session.execute(
                update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING).values(updated_at=db_now())
            )
            return result.rowcount == 1

    def store_hotword_hits(self, job_id: str, hits: list[dict[str, Any]]) -> bool:
        """Store the hits of a job that ended without them (before migration 0009); never
        over hits already stored, nor on a job whose transcript is gone."""
        with self._session_factory.begin() as session:
            result = session.execute(
                update(Job).where(Job.id == job_id, Job.hotword_hits.is_(None), Job.data_expired_at.is_(None))
                .values(hotword_hits=hits)
            )
            return result.rowcount == 1

    def clear_stored_keys(self, job_id: str) -> None:
        """Forget the storage keys after the objects were deleted (not a status change), and a
        live session's sentences and the stored webhook bodies with them: they are its
        transcript too."""
        with self._session_factory.begin() as session:
            session.execute(
                update(Job).where(Job.id == job_id).values(audio_key=None, transcript_key=None, hotword_hits=None,
                                                          updated_at=db_now())
            )
            session.execute(delete(StreamSegment).where(StreamSegment.job_id == job_id))
            redact_payloads(session, job_id)

    def attach_recording(self, job_id: str, audio_key: str, size_bytes: int) -> bool:
        """A live session's recording stored after its job ended (storage was away at its end):
        recorded on the job so it is served, unless the job was canceled or its data expired."""
        with self._session_factory.begin() as session:
            result = session.execute(
                update(Job).where(Job.id == job_id, Job.status != JobStatus.CANCELED, Job.data_expired_at.is_(None))
                .values(audio_key=audio_key, audio_size_bytes=size_bytes, updated_at=db_now()))
            return result.rowcount == 1

    def claim_stale_running(self, stale_before: datetime, limit: int = 100) -> list[tuple[str, str]]:
        """Running jobs untouched since `stale_before` (their worker died with its machine),
        each claimed by one caller only. Returns (job id, queue) pairs the caller must send to
        a worker again.

        The claim touches the row only while it is still older than `stale_before`; the touch
        makes it newer, so of several reapers racing for one job exactly one wins. That needs
        `stale_before` in the past, which is checked.
        """
        if stale_before > self.db_now():
            raise ValueError("stale_before must lie in the past")
        with self._session_factory() as session:
            candidates = session.execute(
                select(Job.id, Job.queue).where(Job.status == JobStatus.RUNNING, Job.updated_at < stale_before,
                                                  Job.mode != STREAM_MODE)
                .limit(limit)
            ).all()
        claimed = []
        for job_id, queue in candidates:
            with self._session_factory.begin() as session:
                result = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.updated_at < stale_before)
                    .values(updated_at=db_now())
                )
                if result.rowcount == 1:
                    claimed.append((job_id, queue))
        return claimed

    def stale_queued(self, stale_before: datetime, limit: int = 100) -> list[tuple[str, str]]:
        """File and sentence jobs still queued, last sent before `stale_before`: (id, queue).

        Only candidates: a job waiting behind a backlog looks the same here; the caller asks
        the broker before it claims. Only file and sentence jobs go through a queue (a live
        session's job has no file to send), so only they are listed."""
        with self._session_factory() as session:
            rows = session.execute(
                select(Job.id, Job.queue)
                .where(Job.status == JobStatus.QUEUED, Job.updated_at < stale_before,
                       Job.mode.in_(("file", "sentence")))
                .order_by(Job.updated_at).limit(limit)
            ).all()
        return [(job_id, queue) for job_id, queue in rows]

    def claim_stale_queued(self, stale_before: datetime, job_ids: Sequence[str]) -> list[str]:
        """Claim queued jobs untouched since `stale_before` for sending again, each by one
        caller only (the claim touches the row, as `claim_stale_running` does; the touch also
        restarts the job's wait, so it is sent again at most once per threshold)."""
        if stale_before > self.db_now():
            raise ValueError("stale_before must lie in the past")
        claimed = []
        for job_id in job_ids:
            with self._session_factory.begin() as session:
                result = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == JobStatus.QUEUED, Job.updated_at < stale_before)
                    .values(updated_at=db_now())
                )
                if result.rowcount == 1:
                    claimed.append(job_id)
        return claimed

    def oldest_created_at(self) -> datetime | None:
        with self._session_factory() as session:
            return session.scalar(select(func.min(Job.created_at)))

    # --- live sessions -------------------------------------------------------------------
    def add_stream_segment(self, job_id: str, index: int, start_ms: int, end_ms: int, text: str,
                           segment: Segment | None = None) -> None:
        """Persist one final sentence of a live session the moment it exists (idempotent by
        its index, so a repeated write after a database blip cannot duplicate it); `segment`
        brings its words and speaker."""
        details: dict[str, Any] = {}
        if segment is not None:
            details = {"words": [word.model_dump(exclude_none=True) for word in segment.words] or None,
                       "speaker": segment.speaker, "speaker_name": segment.speaker_name,
                       "speaker_similarity": segment.speaker_similarity}
        with self._session_factory.begin() as session:
            if session.get(StreamSegment, (job_id, index)) is None:
                session.add(StreamSegment(job_id=job_id, index=index, start_ms=start_ms, end_ms=end_ms, text=text,
                                          **details))

    def stream_transcript_segments(self, job_id: str) -> list[Segment]:
        """A live session's stored sentences as transcript segments, with their words and speakers."""
        return [Segment(start_s=row.start_ms / 1000, end_s=row.end_ms / 1000, text=row.text,
                        words=[Word.model_validate(word) for word in row.words or []], speaker=row.speaker,
                        speaker_name=row.speaker_name, speaker_similarity=row.speaker_similarity)
                for row in self.stream_segments(job_id)]

    def stream_segments(self, job_id: str) -> list[StreamSegment]:
        with self._session_factory() as session:
            query = select(StreamSegment).where(StreamSegment.job_id == job_id).order_by(StreamSegment.index)
            return list(session.scalars(query).all())

    def streams_owed_reprocessing(self, finished_after: datetime, finished_before: datetime,
                                  limit: int = 100) -> list[tuple[str, str]]:
        """(session id, reprocess mode) of live sessions that ended well in the window, asked
        for reprocessing, still hold their recording and have no file job yet: their worker
        died, or storage or the database failed, between the session's end and the queueing.
        At most `limit`, oldest end first, chosen in SQL (a file job names its session in
        `source_job_id`), so sessions already reprocessed never crowd out the owed ones."""
        from shared import reprocess

        wanted_modes = [mode for mode in reprocess.MODES if mode != reprocess.NONE]
        child = aliased(Job)
        mode = Job.options["reprocess"].as_string()
        query = (
            select(Job.id, mode)
            .where(Job.mode == STREAM_MODE, Job.status == JobStatus.SUCCEEDED,
                   Job.finished_at > finished_after, Job.finished_at < finished_before,
                   Job.audio_key.is_not(None), Job.data_expired_at.is_(None), mode.in_(wanted_modes),
                   ~exists().where(child.source_job_id == Job.id))
            .order_by(Job.finished_at, Job.id)
            .limit(limit)
        )
        with self._session_factory() as session:
            return [(job_id, wanted) for job_id, wanted in session.execute(query).all()]

    def silent_streams(self, stale_before: datetime) -> list[str]:
        """Live-session jobs still `running` whose worker stopped touching them (the worker and
        the API both died): the reconciler fails them (`shared.jobs.final`), keeping the
        sentences already stored."""
        with self._session_factory() as session:
            return list(session.scalars(
                select(Job.id).where(Job.status == JobStatus.RUNNING, Job.mode == STREAM_MODE,
                                     Job.updated_at < stale_before)
            ).all())
