"""Enrolled speakers (voiceprints), per key: the API creates and lists them, a worker fills in
the embedding, and a job's worker reads the ready ones of the job's key and model."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import Speaker, SpeakerStatus, utc_now
from shared.errors import NotFoundError


@dataclass(frozen=True)
class Voiceprint:
    """What identification needs of a ready speaker: no ORM row crosses into the engines."""

    speaker_id: str
    name: str
    embedding: tuple[float, ...]


class SpeakerRepository:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def create(self, owner: str, name: str, audio_keys: list[str], audio_duration_s: float,
               speaker_id: str | None = None) -> Speaker:
        now = utc_now()
        row = Speaker(id=speaker_id or uuid.uuid4().hex, owner_key_id=owner, name=name,
                      status=SpeakerStatus.ENROLLING, audio_keys=list(audio_keys),
                      audio_duration_s=audio_duration_s, created_at=now, updated_at=now)
        with self._session_factory.begin() as session:
            session.add(row)
        return self.find(row.id) or row

    def find(self, speaker_id: str) -> Speaker | None:
        """Any key's speaker: for the worker, which acts on the id it was sent."""
        with self._session_factory() as session:
            return session.get(Speaker, speaker_id)

    def get(self, owner: str, speaker_id: str) -> Speaker:
        """The key's own speaker; another key's reads as missing (404), never as forbidden."""
        row = self.find(speaker_id[:32])
        if row is None or row.owner_key_id != owner:
            raise NotFoundError(f"speaker {speaker_id[:32]!r} not found")
        return row

    def count(self, owner: str) -> int:
        """The key's speakers, whatever their status (an enrolling one holds audio too)."""
        with self._session_factory() as session:
            return int(session.scalar(select(func.count()).where(Speaker.owner_key_id == owner)) or 0)

    def enrolling_ids(self, speaker_ids: list[str]) -> set[str]:
        """Those of `speaker_ids` still enrolling: their audio is in use."""
        if not speaker_ids:
            return set()
        with self._session_factory() as session:
            return set(session.scalars(select(Speaker.id).where(
                Speaker.id.in_(speaker_ids), Speaker.status == SpeakerStatus.ENROLLING)).all())

    def stale_enrolling(self, created_before: datetime, limit: int = 100) -> list[tuple[str, list[str]]]:
        """(speaker id, audio keys) of enrollments started before `created_before` and still
        enrolling: their task was lost (a worker died with it, Redis lost the message)."""
        with self._session_factory() as session:
            rows = session.execute(select(Speaker.id, Speaker.audio_keys).where(
                Speaker.status == SpeakerStatus.ENROLLING, Speaker.created_at < created_before).limit(limit)).all()
        return [(speaker_id, list(keys or [])) for speaker_id, keys in rows]

    def list(self, owner: str) -> list[Speaker]:
        with self._session_factory() as session:
            query = select(Speaker).where(Speaker.owner_key_id == owner).order_by(Speaker.name, Speaker.created_at)
            return list(session.scalars(query).all())

    def delete(self, owner: str, speaker_id: str) -> Speaker:
        with self._session_factory.begin() as session:
            row = session.get(Speaker, speaker_id[:32])
            if row is None or row.owner_key_id != owner:
                raise NotFoundError(f"speaker {speaker_id[:32]!r} not found")
            session.delete(row)
            return row

    def mark_ready(self, speaker_id: str, embedding: list[float], model: str) -> bool:
        """Store the embedding; False when the speaker was deleted (or finished) meanwhile."""
        return self._finish(speaker_id, status=SpeakerStatus.READY, embedding=embedding, embedding_model=model,
                            error=None)

    def mark_failed(self, speaker_id: str, reason: str) -> bool:
        return self._finish(speaker_id, status=SpeakerStatus.FAILED, error=reason)

    def _finish(self, speaker_id: str, **values: object) -> bool:
        """Only an enrolling speaker moves on, so a redelivered task cannot overwrite a result."""
        with self._session_factory.begin() as session:
            result = session.execute(
                update(Speaker).where(Speaker.id == speaker_id, Speaker.status == SpeakerStatus.ENROLLING)
                .values(audio_keys=[], updated_at=utc_now(), **values))
            return result.rowcount == 1

    def voiceprints(self, owner: str, model: str) -> list[Voiceprint]:
        """The key's ready speakers embedded by `model`: never another model's vectors."""
        with self._session_factory() as session:
            rows = session.scalars(select(Speaker).where(
                Speaker.owner_key_id == owner, Speaker.embedding_model == model,
                Speaker.status == SpeakerStatus.READY)).all()
            return [Voiceprint(row.id, row.name, tuple(float(x) for x in row.embedding or ()))
                    for row in rows if row.embedding]
