"""Engine and session factory, built once per process from the settings."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool


def make_engine(database_url: str, *, pooled: bool = True) -> Engine:
    """An engine tuned for the backend: SQLite needs WAL and a busy timeout for many writers.

    `pooled=False` holds no connection between uses: for a process that forks children
    afterwards (a Celery parent), so no child inherits a live database socket.
    """
    extra: dict[str, object] = {} if pooled else {"poolclass": NullPool}
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"timeout": 30, "check_same_thread": False}, **extra)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if not pooled:
        return create_engine(database_url, **extra)
    return create_engine(database_url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)
