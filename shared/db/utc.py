"""Every time the database hands back carries its zone (UTC), whichever backend stored it.

PostgreSQL keeps the zone of a `timestamptz`; SQLite has no such type and hands datetimes
back naive. Every time the project writes is UTC, so the column type attaches UTC on the way
out, once, and no caller has to fix a time it reads.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` whose values always come back timezone-aware (UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with the zone, as every public JSON writes a time; None stays None."""
    return value.isoformat() if value is not None else None
