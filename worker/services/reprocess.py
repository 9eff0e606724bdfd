"""Queue a finished live session's recording as a file job (the session's `reprocess` option).

The file job runs the offline pipeline over the whole recording (full beam, whole-file
context; speaker labels with `diarize`), so the session ends up with two transcripts: the
live one, and a better one a little later. Its id derives from the session's
(`shared.reprocess.reprocess_job_id`); it belongs to the same key and reports to the same
webhook, so the client hears of each stage.

It is a second job over the same audio, so it goes through what every job does: the file
queue's backlog admission (a full queue: not now; the reconciler's sweep asks again later) and
the key's daily audio allowance (charged the recording's length; no room: the job is recorded
as failed, saying so, and the session's reprocess stage reads `reprocess_failed`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import redis
from celery import Celery
from sqlalchemy.exc import IntegrityError

from shared import reprocess
from shared.admission import check_backlog
from shared.audio_allowance import AudioAllowance, charged_s, daily_limit_s
from shared.config import Settings
from shared.db.models import Job, JobStatus
from shared.db.repository import JobRepository
from shared.jobs.dispatch import send_transcribe
from shared.jobs.final import EndContext, cancel_job
from shared.jobs.keys import audio_key
from shared.jobs.rows import queued_job
from shared.redis_connect import limits_storage_uri
from shared.schemas import JobOptions
from shared.storage import Storage
from worker.services.completion import FinishContext, Labels, fail

logger = logging.getLogger(__name__)


def _charge_refusal(jobs: JobRepository, settings: Settings, session: Job) -> str | None:
    """Charge the key for the recording; the reason it cannot pay, or None once charged."""
    limit_s = daily_limit_s(jobs.session_factory, settings, session.api_key_id)
    if not session.api_key_id or not limit_s:
        return None
    cost_s = charged_s(session.audio_duration_s)
    allowance = AudioAllowance(limits_storage_uri(settings))
    if cost_s <= limit_s and allowance.charge(session.api_key_id, limit_s, cost_s):
        return None
    return (f"not reprocessed: the recording ({cost_s} s) does not fit in what is left of key"
            f" {session.api_key_id}'s {limit_s} audio seconds per day")


def queue_reprocess(jobs: JobRepository, storage: Storage, settings: Settings, celery: Celery | None,
                    client: redis.Redis, session_job_id: str, mode: str) -> str | None:
    """Create and send the file job; returns its id (None when the session asked for none).

    The file job gets its own copy of the session's stored recording, so deleting either job
    never takes the other's audio; working from storage, not from the worker's memory, lets
    the reconciler do this again for a session whose worker died before it could. Raises
    ServiceUnavailableError (nothing made) while the file queue is full: the sweep retries.
    `client`: the broker's Redis, for the backlog's measurements and the key's counters."""
    if mode == reprocess.NONE:
        return None
    job_id = reprocess.reprocess_job_id(session_job_id)
    if jobs.find(job_id) is not None:
        return job_id
    session = jobs.get(session_job_id)
    if session.audio_key is None:
        logger.warning("session %s: its recording is gone; nothing to reprocess", session_job_id)
        return None
    queue = settings.file_queue
    check_backlog(settings, jobs.session_factory, client, queue)
    refusal = _charge_refusal(jobs, settings, session)
    if refusal is not None:
        ctx = FinishContext(settings=settings, jobs=jobs, storage=storage, redis=client, celery=celery)
        return _record_refused(ctx, session, job_id, mode, queue, refusal)
    copy_key = audio_key(job_id)
    with tempfile.TemporaryDirectory(prefix="oddasr-reprocess-") as scratch:
        local = Path(scratch) / "recording.wav"
        storage.download_to(session.audio_key, local)
        with local.open("rb") as recording:
            size_bytes = storage.put_file(copy_key, recording)
    if _deleted(jobs, session_job_id):  # a DELETE landed during the copy: the copy goes too
        storage.delete(copy_key)
        logger.info("session %s was deleted while its recording was copied; not reprocessed", session_job_id)
        return None
    options = JobOptions(language=session.options.get("language"), hotwords=session.options.get("hotwords") or [],
                         diarize=mode == reprocess.DIARIZE)
    try:
        jobs.create(_reprocess_job(session, job_id, queue, copy_key, size_bytes,
                                   {**options.model_dump(), "source_job_id": session_job_id, "reprocess": mode}))
    except IntegrityError:  # another worker (the session's, or a sweep) made it meanwhile
        return job_id
    if _deleted(jobs, session_job_id):  # ... or between that look and the row: undone before it is sent
        cancel_job(EndContext(settings=settings, jobs=jobs, redis=client, celery=celery), job_id,
                   "its live session was deleted before it started")
        storage.delete(copy_key)
        jobs.clear_stored_keys(job_id)
        return None
    if celery is not None:  # else the reconciler sends it, as any job whose message was lost
        send_transcribe(celery, job_id, queue)
    logger.info("session %s: its recording is queued as file job %s (%s)", session_job_id, job_id, mode)
    return job_id


def _deleted(jobs: JobRepository, session_job_id: str) -> bool:
    """Whether the session's data was deleted (DELETE, retention) since it was read."""
    session = jobs.find(session_job_id)
    return session is None or session.audio_key is None or session.status == JobStatus.CANCELED


def _record_refused(ctx: FinishContext, session: Job, job_id: str, mode: str, queue: str, reason: str) -> str:
    """The reprocessing job as failed, with the reason: the client sees it (and its webhook)."""
    try:
        ctx.jobs.create(_reprocess_job(session, job_id, queue, None, 0,
                                       {"source_job_id": session.id, "reprocess": mode}))
    except IntegrityError:
        return job_id
    fail(ctx, job_id, reason, labels=Labels(queue=queue, mode="file"))
    logger.warning("session %s: %s", session.id, reason)
    return job_id


def _reprocess_job(session: Job, job_id: str, queue: str, copy_key: str | None, size_bytes: int,
                   options: dict[str, object]) -> Job:
    """The file job's row: the session's key, webhook and length, over its own copy of the audio."""
    return queued_job(job_id, mode="file", queue=queue, options=options, audio_key=copy_key,
                      filename=f"{session.audio_filename} (reprocessed)", size_bytes=size_bytes,
                      duration_s=session.audio_duration_s, callback_url=session.callback_url,
                      api_key_id=session.api_key_id, source_job_id=session.id)
