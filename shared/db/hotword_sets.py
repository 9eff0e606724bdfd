"""Named hotword sets, per key: create or replace (a new version), read, list, delete."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import HotwordSet, utc_now
from shared.errors import ConflictError, NotFoundError
from shared.hotwords import HotwordEntry


def _entries_json(entries: list[HotwordEntry]) -> list[dict[str, object]]:
    return [{"word": e.word, "weight": e.weight} for e in entries]


def entries_of(row: HotwordSet) -> list[HotwordEntry]:
    return [HotwordEntry(str(item["word"]), int(item["weight"])) for item in row.entries or []]


class HotwordSetRepository:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def list(self, owner: str) -> list[HotwordSet]:
        with self._session_factory() as session:
            query = select(HotwordSet).where(HotwordSet.owner_key_id == owner).order_by(HotwordSet.name)
            return list(session.scalars(query).all())

    def find(self, owner: str, name: str) -> HotwordSet | None:
        with self._session_factory() as session:
            return session.scalar(select(HotwordSet).where(HotwordSet.owner_key_id == owner, HotwordSet.name == name))

    def get(self, owner: str, name: str) -> HotwordSet:
        row = self.find(owner, name)
        if row is None:
            raise NotFoundError(f"hotword set {name[:64]!r} not found")
        return row

    def put(self, owner: str, name: str, entries: list[HotwordEntry],
            max_sets: int = 0) -> tuple[HotwordSet, bool]:
        """Create the set (version 1) or replace its words (version + 1); (row, created).

        A new set past `max_sets` of the key (0: no limit) is refused with 409; replacing one is
        always allowed. Counted in the creating transaction, so concurrent creates may pass the
        cap by the few that race, never by more."""
        for _attempt in range(3):
            try:
                with self._session_factory.begin() as session:
                    result = session.execute(
                        update(HotwordSet).where(HotwordSet.owner_key_id == owner, HotwordSet.name == name)
                        .values(entries=_entries_json(entries), version=HotwordSet.version + 1,
                                updated_at=utc_now()))
                    created = result.rowcount != 1
                    if created:
                        _refuse_past_cap(session, owner, max_sets)
                        now = utc_now()
                        session.add(HotwordSet(owner_key_id=owner, name=name, version=1,
                                               entries=_entries_json(entries), created_at=now, updated_at=now))
            except IntegrityError:  # created by a concurrent request: replace it instead
                continue
            row = self.find(owner, name)
            if row is not None:  # else deleted between the write and the read: write again
                return row, created
        return self.get(owner, name), False

    def delete(self, owner: str, name: str) -> None:
        with self._session_factory.begin() as session:
            row = session.scalar(select(HotwordSet).where(HotwordSet.owner_key_id == owner, HotwordSet.name == name))
            if row is None:
                raise NotFoundError(f"hotword set {name[:64]!r} not found")
            session.delete(row)


def _refuse_past_cap(session: Session, owner: str, max_sets: int) -> None:
    if not max_sets:
        return
    held = int(session.scalar(select(func.count()).where(HotwordSet.owner_key_id == owner)) or 0)
    if held >= max_sets:
        raise ConflictError(f"this key already holds {held} hotword sets, its limit (max_hotword_sets_per_key ="
                            f" {max_sets}): delete one (DELETE /v1/hotwords/{{name}}) or replace an existing set")
