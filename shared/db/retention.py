"""Finding finished jobs whose stored data outlived the retention, and forgetting it.

Only storage keys and the expiry time are written here, never a status: an expired job keeps
the status it ended with. Deleting an object twice is harmless, so workers that sweep at
the same time need no claim.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.db.clock import db_now
from shared.db.models import TERMINAL_STATUSES, Job, StreamSegment, utc_now
from shared.db.webhooks import redact_payloads

_FINAL = [status.value for status in TERMINAL_STATUSES]


class RetentionRepository:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def audio_finished_before(self, cutoff: datetime, limit: int = 100) -> list[tuple[str, str]]:
        """(job id, audio key) of finished jobs that still hold audio and ended before `cutoff`."""
        with self._session_factory() as session:
            rows = session.execute(
                select(Job.id, Job.audio_key)
                .where(Job.status.in_(_FINAL), Job.finished_at < cutoff, Job.audio_key.is_not(None))
                .order_by(Job.finished_at).limit(limit)
            ).all()
        return [(job_id, key) for job_id, key in rows]

    def data_finished_before(self, cutoff: datetime, limit: int = 100) -> list[tuple[str, list[str]]]:
        """(job id, its storage keys) of finished, not yet expired jobs that ended before `cutoff`."""
        with self._session_factory() as session:
            rows = session.execute(
                select(Job.id, Job.audio_key, Job.transcript_key)
                .where(Job.status.in_(_FINAL), Job.finished_at < cutoff, Job.data_expired_at.is_(None))
                .order_by(Job.finished_at).limit(limit)
            ).all()
        return [(job_id, [key for key in (audio, transcript) if key]) for job_id, audio, transcript in rows]

    def forget_audio(self, job_id: str) -> None:
        with self._session_factory.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(audio_key=None, updated_at=db_now()))

    def mark_expired(self, job_id: str) -> None:
        """The job's objects are gone: forget their keys, a live session's sentences and the
        stored webhook bodies (they carry the transcript)."""
        now = utc_now()
        with self._session_factory.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(
                audio_key=None, transcript_key=None, hotword_hits=None, data_expired_at=now, updated_at=now))
            session.execute(delete(StreamSegment).where(StreamSegment.job_id == job_id))
            redact_payloads(session, job_id)
