"""Celery tasks: thin wrappers that take ids and call the services."""

from __future__ import annotations

import logging

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from shared.config import get_settings
from shared.db.models import JobStatus
from shared.errors import OddAsrError
from shared.schemas import TRANSCRIBE_TASK_NAME
from worker.celery_app import app
from worker.services.runtime import WorkerRuntime, current_runtime
from worker.services.transcription import fail_job, run_transcription

logger = logging.getLogger(__name__)

#: Transient failures (storage or database down) are retried this many times with backoff.
MAX_TRANSIENT_RETRIES = 5


class JobFailed(Exception):
    """Raised once a job is recorded as failed, so Celery (and Flower) show the task as FAILURE
    with the job's reason instead of a success. It is declared in `throws`: an expected
    outcome, logged without a traceback, never retried (no autoretry), and the message is
    acknowledged (acks_on_failure), so a failed job is not delivered again. One string
    argument, so Celery can serialize it as it is."""


def _job_failed(job_id: str, reason: str) -> JobFailed:
    return JobFailed(f"job {job_id} failed: {reason}")


def _failed(runtime: WorkerRuntime, job_id: str, reason: str) -> JobFailed:
    fail_job(runtime, job_id, reason)
    return _job_failed(job_id, reason)


@app.task(name=TRANSCRIBE_TASK_NAME, bind=True, max_retries=MAX_TRANSIENT_RETRIES, throws=(JobFailed,))
def transcribe(self: Task, job_id: str) -> None:
    runtime = current_runtime(get_settings())
    try:
        status = run_transcription(runtime, job_id)
    except SoftTimeLimitExceeded as exc:
        limit_s = runtime.settings.job_time_limit_s
        raise _failed(runtime, job_id, f"the job ran past the time limit of {limit_s} s") from exc
    except (OddAsrError, OperationalError, redis.RedisError) as exc:
        if isinstance(exc, OddAsrError) and not exc.transient:
            raise _failed(runtime, job_id, exc.message) from exc
        # Storage, database or Redis down: the job is fine, the world is not. Retry later.
        if self.request.retries >= MAX_TRANSIENT_RETRIES:
            raise _failed(runtime, job_id, f"gave up after {MAX_TRANSIENT_RETRIES} retries: {exc}") from exc
        countdown_s = min(60, 2 ** (self.request.retries + 1))
        logger.warning("job %s hit a transient error (%s); retrying in %d s", job_id, exc, countdown_s)
        raise self.retry(exc=exc, countdown=countdown_s) from exc
    except Exception as exc:
        # A bug or an engine crash: the job fails with a reason, the worker lives on.
        logger.exception("job %s failed unexpectedly", job_id)
        raise _failed(runtime, job_id, f"internal error: {type(exc).__name__}: {exc}") from exc
    if status == JobStatus.FAILED:
        raise _job_failed(job_id, runtime.jobs.get(job_id).error or "transcription failed")
