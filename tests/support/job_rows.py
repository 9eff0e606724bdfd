"""Job rows for tests, made by the rows' owner (`shared.jobs.rows`) like every real job.

A test that needs a job in some later state (running, succeeded, a given `created_at`) gets
the row the owner makes and sets those columns on it, so a column the owner fills for every
new job (a new one included) is filled in tests too. tests/test_job_lifecycle.py refuses a
`Job(...)` built anywhere else, tests included.
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.db.models import Job
from shared.db.repository import STREAM_MODE
from shared.jobs.rows import STREAM_QUEUE, live_session_job, queued_job

#: The stream worker a test's live-session row names.
TEST_WORKER_ID = "test-host:1"


def job_row(job_id: str | None = None, *, mode: str = "file", queue: str | None = None,
            options: dict[str, Any] | None = None, audio_key: str | None = None, filename: str = "test.wav",
            size_bytes: int = 0, duration_s: float | None = None, callback_url: str | None = None,
            api_key_id: str | None = None, **columns: Any) -> Job:
    """A new job's row (`mode="stream"`: a live session's), then `columns` set on it.

    `audio_key` is the caller's: None unless given, a live session's too."""
    job_id = job_id or uuid.uuid4().hex
    if mode == STREAM_MODE:
        row = live_session_job(job_id, options=options or {}, filename=filename, worker_id=TEST_WORKER_ID,
                               callback_url=callback_url, api_key_id=api_key_id)
        row.queue = queue or STREAM_QUEUE
        row.audio_key, row.audio_size_bytes, row.audio_duration_s = audio_key, size_bytes, duration_s
    else:
        row = queued_job(job_id, mode=mode, queue=queue or "cpu", options=options or {}, audio_key=audio_key,
                         filename=filename, size_bytes=size_bytes, duration_s=duration_s,
                         callback_url=callback_url, api_key_id=api_key_id)
    for name, value in columns.items():
        if not hasattr(Job, name):
            raise TypeError(f"a job has no column {name!r}")
        setattr(row, name, value)
    return row
