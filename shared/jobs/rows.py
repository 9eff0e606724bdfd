"""The row each kind of job starts as, so every path that makes a job fills it alike."""

from __future__ import annotations

from typing import Any

from shared.db.models import Job, JobStatus, utc_now
from shared.db.repository import STREAM_MODE
from shared.jobs.keys import audio_key

#: The column's width: a client's file name is shown, never trusted, and cut to fit.
MAX_FILENAME_CHARS = 255
#: The modes of a job made from an upload (a live session's is `STREAM_MODE`).
UPLOAD_MODES = ("file", "sentence")
#: The queue name a live session's row carries (no Celery queue serves it: its worker holds it).
STREAM_QUEUE = "stream"


def queued_job(job_id: str, *, mode: str, queue: str, options: dict[str, Any], audio_key: str | None,
               filename: str, size_bytes: int, duration_s: float | None, callback_url: str | None,
               api_key_id: str | None, source_job_id: str | None = None) -> Job:
    """A job waiting for a worker: an upload, or a session's reprocessing (`audio_key` None
    when it was refused before its audio was copied; `source_job_id`: the session's id)."""
    return Job(
        id=job_id, status=JobStatus.QUEUED, mode=mode, queue=queue, options=options, audio_key=audio_key,
        audio_filename=filename[:MAX_FILENAME_CHARS], audio_size_bytes=size_bytes, audio_duration_s=duration_s,
        progress=0.0, attempts=0, callback_url=callback_url, api_key_id=api_key_id, source_job_id=source_job_id,
    )


def live_session_job(job_id: str, *, options: dict[str, Any], filename: str, worker_id: str,
                     callback_url: str | None, api_key_id: str | None) -> Job:
    """A live session's job, `running` from the start: a stream worker already holds it. Its
    audio key is where the recording goes when the session ends."""
    now = utc_now()
    return Job(
        id=job_id, status=JobStatus.RUNNING, mode=STREAM_MODE, queue=STREAM_QUEUE, options=options,
        audio_key=audio_key(job_id), audio_filename=filename[:MAX_FILENAME_CHARS], audio_size_bytes=0,
        audio_duration_s=0.0, progress=0.0, attempts=0, worker=worker_id, engine=None, created_at=now,
        started_at=now, callback_url=callback_url, api_key_id=api_key_id,
    )
