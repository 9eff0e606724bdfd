"""Celery tasks: thin wrappers that take ids and call the services."""

from __future__ import annotations

import logging

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from shared.config import get_settings
from shared.errors import OddAsrError
from shared.schemas import TRANSCRIBE_TASK_NAME
from worker.celery_app import app
from worker.services.runtime import current_runtime
from worker.services.transcription import fail_job, run_transcription

logger = logging.getLogger(__name__)

#: Transient failures (storage or database down) are retried this many times with backoff.
MAX_TRANSIENT_RETRIES = 5


@app.task(name=TRANSCRIBE_TASK_NAME, bind=True, max_retries=MAX_TRANSIENT_RETRIES)
def transcribe(self: Task, job_id: str) -> None:
    runtime = current_runtime(get_settings())
    try:
        run_transcription(runtime, job_id)
    except SoftTimeLimitExceeded:
        fail_job(runtime, job_id, f"the job ran past the time limit of {runtime.settings.job_time_limit_s} s")
    except (OddAsrError, OperationalError, redis.RedisError) as exc:
        if isinstance(exc, OddAsrError) and not exc.transient:
            fail_job(runtime, job_id, exc.message)
            return
        # Storage, database or Redis down: the job is fine, the world is not. Retry later.
        if self.request.retries >= MAX_TRANSIENT_RETRIES:
            fail_job(runtime, job_id, f"gave up after {MAX_TRANSIENT_RETRIES} retries: {exc}")
            return
        countdown_s = min(60, 2 ** (self.request.retries + 1))
        logger.warning("job %s hit a transient error (%s); retrying in %d s", job_id, exc, countdown_s)
        raise self.retry(exc=exc, countdown=countdown_s) from exc
    except Exception as exc:
        # A bug or an engine crash: the job fails with a reason, the worker lives on.
        logger.exception("job %s failed unexpectedly", job_id)
        fail_job(runtime, job_id, f"internal error: {type(exc).__name__}: {exc}")
