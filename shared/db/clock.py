"""The database's clock: leases and staleness are stamped and judged by it, in SQL.

A job's row is touched by the worker that runs it and judged stale by the reconciler of
another worker host; a webhook delivery is held by one sender and found due by another. Those
hosts' clocks may differ by minutes, so neither the stamp nor the cutoff comes from a caller's
clock: both are `db_now()`, an SQL expression the database evaluates (`now()` on PostgreSQL).
SQLite runs inside one process on one host, so there its clock is that host's, which is the
only clock a SQLite deployment has.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from shared.db.utc import UtcDateTime


class db_now(FunctionElement[datetime]):  # noqa: N801 - reads as the SQL function it stands for
    """The database's current UTC time, `offset_s` seconds later (earlier when negative)."""

    type = UtcDateTime()
    inherit_cache = True
    name = "db_now"

    def __init__(self, offset_s: float = 0.0) -> None:
        super().__init__(literal(float(offset_s), Float()))


@compiles(db_now)
def _sqlite_now(element: db_now, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff': the same text, so
    # comparisons with stored times stay comparisons of times.
    offset = compiler.process(element.clauses, **kw)
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', ({offset}) || ' seconds') || '000')"


@compiles(db_now, "postgresql")
def _postgresql_now(element: db_now, compiler: Any, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    return f"(now() + CAST({offset} AS double precision) * INTERVAL '1 second')"


def read_db_now(session: Session) -> datetime:
    """The database's current UTC time, read once (for a cutoff a caller passes on)."""
    value = session.scalar(select(db_now()))
    assert value is not None
    return value
