"""Queue a finished live session's recording as a file job (the session's `reprocess` option).

The file job runs the offline pipeline over the whole recording (full beam, whole-file
context; speaker labels with `diarize`), so the session ends up with two transcripts: the
live one, and a better one a little later. Its id derives from the session's
(`shared.reprocess.reprocess_job_id`); it belongs to the same key and reports to the same
webhook, so the client hears of each stage.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from celery import Celery
from sqlalchemy.exc import IntegrityError

from shared import reprocess
from shared.config import Settings
from shared.db.models import Job, JobStatus
from shared.db.repository import JobRepository
from shared.schemas import TRANSCRIBE_TASK_NAME, JobOptions
from shared.storage import Storage

logger = logging.getLogger(__name__)


def queue_reprocess(jobs: JobRepository, storage: Storage, settings: Settings, celery: Celery | None,
                    session_job_id: str, mode: str) -> str | None:
    """Create and send the file job; returns its id (None when the session asked for none).

    The file job gets its own copy of the session's stored recording, so deleting either job
    never takes the other's audio; working from storage, not from the worker's memory, lets
    the reconciler do this again for a session whose worker died before it could."""
    if mode == reprocess.NONE:
        return None
    job_id = reprocess.reprocess_job_id(session_job_id)
    if jobs.find(job_id) is not None:
        return job_id
    session = jobs.get(session_job_id)
    if session.audio_key is None:
        logger.warning("session %s: its recording is gone; nothing to reprocess", session_job_id)
        return None
    audio_key = f"audio/{job_id}"
    with tempfile.TemporaryDirectory(prefix="oddasr-reprocess-") as scratch:
        local = Path(scratch) / "recording.wav"
        storage.download_to(session.audio_key, local)
        with local.open("rb") as recording:
            size_bytes = storage.put_file(audio_key, recording)
    options = JobOptions(language=session.options.get("language"), hotwords=session.options.get("hotwords") or [],
                         diarize=mode == reprocess.DIARIZE)
    queue = settings.file_queue
    try:
        jobs.create(Job(
            id=job_id, status=JobStatus.QUEUED, mode="file", queue=queue,
            options={**options.model_dump(), "source_job_id": session_job_id, "reprocess": mode},
            audio_key=audio_key, audio_filename=f"{session.audio_filename} (reprocessed)"[:255],
            audio_size_bytes=size_bytes, audio_duration_s=session.audio_duration_s, progress=0.0, attempts=0,
            callback_url=session.callback_url, api_key_id=session.api_key_id,
        ))
    except IntegrityError:  # another worker (the session's, or a sweep) made it meanwhile
        return job_id
    if celery is not None:  # else the reconciler sends it, as any job whose message was lost
        celery.send_task(TRANSCRIBE_TASK_NAME, args=[job_id], queue=queue, task_id=job_id)
    logger.info("session %s: its recording is queued as file job %s (%s)", session_job_id, job_id, mode)
    return job_id
