"""What one reconciler pass pays to find the live sessions owed their reprocessing.

Every worker node runs this query every `reaper_interval_s`. The database holds a day of
ended live sessions that asked for reprocessing, nearly all already reprocessed by their own
worker (the usual case), and a few owed. The table shows the query's median time and the
rows it fetched; the goal is that both stay flat as the day's sessions grow (a LIMIT and an
anti-join on `source_job_id`, not every session of the day read and filtered in Python).

Run: `.venv/bin/python bench/reprocess_sweep.py [--sessions 2000 20000] [--owed 10]`
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event, insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.db.migrate import upgrade_to_head  # noqa: E402
from shared.db.models import Job, JobStatus, utc_now  # noqa: E402
from shared.db.repository import JobRepository  # noqa: E402
from shared.db.session import make_engine, make_session_factory  # noqa: E402
from shared.reprocess import reprocess_job_id  # noqa: E402

RUNS = 7
LIMIT = 100


def fill(database_url: str, sessions: int, owed: int) -> None:
    """`sessions` ended in the last day, each with its file job but the last `owed`."""
    engine = make_engine(database_url)
    now = utc_now()
    rows, children = [], []
    for index in range(sessions):
        session_id = uuid.uuid4().hex
        rows.append({"id": session_id, "status": JobStatus.SUCCEEDED, "mode": "stream", "queue": "stream",
                     "options": {"reprocess": "offline"}, "audio_key": f"audio/{session_id}",
                     "finished_at": now - timedelta(seconds=120 + index), "progress": 1.0, "attempts": 1})
        if index >= owed:
            children.append({"id": reprocess_job_id(session_id), "status": JobStatus.SUCCEEDED, "mode": "file",
                             "queue": "cpu", "options": {"source_job_id": session_id, "reprocess": "offline"},
                             "progress": 1.0, "attempts": 1,
                             **({"source_job_id": session_id} if hasattr(Job, "source_job_id") else {})})
    with engine.begin() as connection:
        connection.execute(insert(Job), rows)
        connection.execute(insert(Job), children)
    engine.dispose()


def measure(database_url: str) -> tuple[float, int, int]:
    """Median milliseconds of the owed-sessions query, the rows its SELECTs return (run once
    more as sent), and the owed sessions it found."""
    engine = make_engine(database_url)
    jobs = JobRepository(make_session_factory(engine))
    times_ms = []
    found: list[tuple[str, str]] = []
    for _ in range(RUNS):
        now = utc_now()
        started_s = time.perf_counter()
        found = jobs.streams_owed_reprocessing(now - timedelta(days=1), now - timedelta(seconds=60), limit=LIMIT)
        times_ms.append((time.perf_counter() - started_s) * 1000)
    sent: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement: str, parameters: object, *_args: object) -> None:  # type: ignore[no-untyped-def]
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    now = utc_now()
    jobs.streams_owed_reprocessing(now - timedelta(days=1), now - timedelta(seconds=60), limit=LIMIT)
    event.remove(engine, "before_cursor_execute", record)
    rows = 0
    with engine.connect() as connection:
        for statement, parameters in sent:
            if statement.lstrip().upper().startswith("SELECT"):
                rows += len(connection.exec_driver_sql(statement, parameters).fetchall())  # type: ignore[arg-type]
    engine.dispose()
    return statistics.median(times_ms), rows, len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--owed", type=int, default=10)
    args = parser.parse_args()
    print(f"owed-sessions query, limit {LIMIT}, median of {RUNS} runs, SQLite")
    print(f"{'sessions in the day':>20} {'owed':>6} {'found':>6} {'rows read':>10} {'median ms':>10}")
    for sessions in args.sessions:
        with tempfile.TemporaryDirectory(prefix="oddasr-bench-") as scratch:
            database_url = f"sqlite:///{Path(scratch) / 'jobs.db'}"
            upgrade_to_head(database_url)
            fill(database_url, sessions, args.owed)
            median_ms, rows, found = measure(database_url)
            print(f"{sessions:>20} {args.owed:>6} {found:>6} {rows:>10} {median_ms:>10.1f}")


if __name__ == "__main__":
    main()
