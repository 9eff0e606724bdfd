"""Celery tasks: thin wrappers that take ids and call the services."""

from __future__ import annotations

import logging

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from shared.config import get_settings
from shared.db.models import JobStatus
from shared.db.speakers import SpeakerRepository
from shared.errors import OddAsrError
from shared.jobs.dispatch import send_webhook
from shared.schemas import (
    DELIVER_WEBHOOK_TASK_NAME,
    ENROLL_SPEAKER_TASK_NAME,
    REPROCESS_SESSION_TASK_NAME,
    TRANSCRIBE_TASK_NAME,
)
from worker.celery_app import app
from worker.services.completion import FinishContext, fail
from worker.services.reprocess_sweep import reprocess_claimed
from worker.services.runtime import WorkerRuntime, current_runtime
from worker.services.speakers import run_enrollment
from worker.services.transcription import run_transcription
from worker.services.webhooks import attempt_delivery, process_webhook_context

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
    fail(FinishContext.of(runtime, app), job_id, reason)
    return _job_failed(job_id, reason)


#: Retries due sooner than this are sent as a delayed task; later ones are left to the
#: reconciler's sweep (a Redis ETA task held for hours outlives the visibility timeout).
MAX_TASK_COUNTDOWN_S = 60.0


@app.task(name=DELIVER_WEBHOOK_TASK_NAME, ignore_result=True)
def deliver_webhook(delivery_id: str) -> None:
    ctx = process_webhook_context(get_settings())
    outcome = attempt_delivery(ctx, delivery_id)
    if outcome is not None and outcome.retry_in_s is not None and outcome.retry_in_s <= MAX_TASK_COUNTDOWN_S:
        send_webhook(app, ctx.settings, delivery_id, countdown_s=outcome.retry_in_s)


@app.task(name=TRANSCRIBE_TASK_NAME, bind=True, max_retries=MAX_TRANSIENT_RETRIES, throws=(JobFailed,))
def transcribe(self: Task, job_id: str) -> None:
    _transcribe(self, current_runtime(get_settings()), job_id)


def _transcribe(self: Task, runtime: WorkerRuntime, job_id: str) -> None:
    try:
        status = run_transcription(runtime, job_id, celery=app)
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
        _hold_for_retry(runtime, job_id, countdown_s)
        raise self.retry(exc=exc, countdown=countdown_s) from exc
    except Exception as exc:
        # A bug or an engine crash: the job fails with a reason, the worker lives on.
        logger.exception("job %s failed unexpectedly", job_id)
        raise _failed(runtime, job_id, f"internal error: {type(exc).__name__}: {exc}") from exc
    if status == JobStatus.FAILED:
        raise _job_failed(job_id, runtime.jobs.get(job_id).error or "transcription failed")


def _hold_for_retry(runtime: WorkerRuntime, job_id: str, countdown_s: float) -> None:
    """The job's lease covers the retry's wait; with the database itself down it cannot, and
    the stale sweep may send the job once more (a second copy, never a lost job)."""
    try:
        runtime.jobs.hold_for_retry(job_id, countdown_s)
    except SQLAlchemyError:
        logger.warning("job %s: the database is down, its lease could not cover the retry's wait", job_id)


@app.task(name=ENROLL_SPEAKER_TASK_NAME, bind=True, max_retries=MAX_TRANSIENT_RETRIES, ignore_result=True)
def enroll_speaker(self: Task, speaker_id: str) -> None:
    """Embed an enrolled speaker's audio; a failure is recorded on the speaker, never raised."""
    runtime = current_runtime(get_settings())
    try:
        run_enrollment(runtime, speaker_id)
    except (OddAsrError, OperationalError, redis.RedisError) as exc:
        if self.request.retries >= MAX_TRANSIENT_RETRIES:
            SpeakerRepository(runtime.jobs.session_factory).mark_failed(
                speaker_id, f"gave up after {MAX_TRANSIENT_RETRIES} retries: {exc}")
            return
        countdown_s = min(60, 2 ** (self.request.retries + 1))
        logger.warning("speaker %s hit a transient error (%s); retrying in %d s", speaker_id, exc, countdown_s)
        raise self.retry(exc=exc, countdown=countdown_s) from exc
    except Exception as exc:  # a bug or an engine crash: the speaker fails with a reason, the worker lives on
        logger.exception("enrolling speaker %s failed unexpectedly", speaker_id)
        SpeakerRepository(runtime.jobs.session_factory).mark_failed(
            speaker_id, f"internal error: {type(exc).__name__}: {exc}")


@app.task(name=REPROCESS_SESSION_TASK_NAME, ignore_result=True)
def reprocess_session(session_job_id: str, mode: str, claim_token: str) -> None:
    """Copy a live session's recording into the file job it is owed, under the reconciler's
    claim; a failure is logged and left to the next claim (the reconciler's sweep)."""
    reprocess_claimed(FinishContext.of(current_runtime(get_settings()), app), session_job_id, mode, claim_token)
