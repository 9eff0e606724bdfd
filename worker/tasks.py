"""Celery tasks: thin wrappers that take ids and call the services."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis
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

#: A transient failure (storage, database or Redis down) is tried again after each of these
#: waits, then given up: about a minute of outage is ridden out. The waits happen inside the
#: task, on this worker's clock and under the job's lease, not as Celery retries: Celery turns a
#: retry's countdown into an ETA on the sending host's clock, so across hosts whose clocks
#: differ a retry ran at once (the whole budget spent inside a 30 s S3 outage, the job failed)
#: or late (after the stale sweep had sent a second copy, whose retries raced the first's).
TRANSIENT_RETRY_WAITS_S: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 32.0)

#: The errors that mean the world is down, not the job: retried, never failed at once.
TRANSIENT_ERRORS = (OddAsrError, OperationalError, redis.RedisError)

_T = TypeVar("_T")


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


@app.task(name=TRANSCRIBE_TASK_NAME, throws=(JobFailed,))
def transcribe(job_id: str) -> None:
    _transcribe(current_runtime(get_settings()), job_id)


class _GaveUp(Exception):
    """Every wait of TRANSIENT_RETRY_WAITS_S was spent and the world is still down."""

    def __init__(self, last_error: Exception) -> None:
        waited_s = sum(TRANSIENT_RETRY_WAITS_S)
        super().__init__(f"gave up after {len(TRANSIENT_RETRY_WAITS_S)} retries over {waited_s:g} s: {last_error}")


def _is_transient(exc: Exception) -> bool:
    return not isinstance(exc, OddAsrError) or exc.transient


def _wait(wait_s: float) -> None:
    """The pause between tries (its own name, so a test replaces it alone)."""
    time.sleep(wait_s)


def with_transient_retries(what: str, attempt: Callable[[], _T], before_wait: Callable[[float], bool],
                           sleep: Callable[[float], None] | None = None) -> _T:
    """`attempt()` until it returns, waiting out transient errors (TRANSIENT_RETRY_WAITS_S);
    `before_wait(wait_s)` runs before each wait (to hold the job's lease over it); False: the
    work ended meanwhile (canceled, finished by another copy), so the next try comes at once and
    finds nothing to do. A non-transient error propagates at once; `_GaveUp` once the waits are
    spent."""
    for wait_s in (*TRANSIENT_RETRY_WAITS_S, None):
        try:
            return attempt()
        except TRANSIENT_ERRORS as exc:
            if not _is_transient(exc):
                raise
            if wait_s is None:
                raise _GaveUp(exc) from exc
            logger.warning("%s hit a transient error (%s); trying again in %g s", what, exc, wait_s)
            if before_wait(wait_s):
                (sleep or _wait)(wait_s)
    raise AssertionError("unreachable: the last pass returns or raises")


def _transcribe(runtime: WorkerRuntime, job_id: str, sleep: Callable[[float], None] | None = None) -> None:
    try:
        status = with_transient_retries(
            f"job {job_id}", lambda: run_transcription(runtime, job_id, celery=app),
            lambda wait_s: _hold_for_retry(runtime, job_id, wait_s), sleep)
    except SoftTimeLimitExceeded as exc:
        limit_s = runtime.settings.job_time_limit_s
        raise _failed(runtime, job_id, f"the job ran past the time limit of {limit_s} s") from exc
    except _GaveUp as exc:
        raise _failed(runtime, job_id, str(exc)) from exc
    except OddAsrError as exc:  # not transient: the job itself is at fault
        raise _failed(runtime, job_id, exc.message) from exc
    except Exception as exc:
        # A bug or an engine crash: the job fails with a reason, the worker lives on.
        logger.exception("job %s failed unexpectedly", job_id)
        raise _failed(runtime, job_id, f"internal error: {type(exc).__name__}: {exc}") from exc
    if status == JobStatus.FAILED:
        raise _job_failed(job_id, runtime.jobs.get(job_id).error or "transcription failed")


def _hold_for_retry(runtime: WorkerRuntime, job_id: str, countdown_s: float) -> bool:
    """The job's lease covers the retry's wait; with the database itself down it cannot, and
    the stale sweep may send the job once more (a second copy, never a lost job). False once
    the job is no longer running (canceled meanwhile): nothing to wait for."""
    try:
        return runtime.jobs.hold_for_retry(job_id, countdown_s)
    except SQLAlchemyError:
        logger.warning("job %s: the database is down, its lease could not cover the retry's wait", job_id)
        return True


@app.task(name=ENROLL_SPEAKER_TASK_NAME, ignore_result=True)
def enroll_speaker(speaker_id: str) -> None:
    _enroll_speaker(current_runtime(get_settings()), speaker_id)


def _enroll_speaker(runtime: WorkerRuntime, speaker_id: str, sleep: Callable[[float], None] | None = None) -> None:
    """Embed an enrolled speaker's audio; a failure is recorded on the speaker, never raised."""
    try:
        with_transient_retries(f"speaker {speaker_id}", lambda: run_enrollment(runtime, speaker_id),
                               lambda _wait_s: True, sleep)
    except (_GaveUp, OddAsrError) as exc:
        reason = exc.message if isinstance(exc, OddAsrError) else str(exc)
        SpeakerRepository(runtime.jobs.session_factory).mark_failed(speaker_id, reason)
    except Exception as exc:  # a bug or an engine crash: the speaker fails with a reason, the worker lives on
        logger.exception("enrolling speaker %s failed unexpectedly", speaker_id)
        SpeakerRepository(runtime.jobs.session_factory).mark_failed(
            speaker_id, f"internal error: {type(exc).__name__}: {exc}")


@app.task(name=REPROCESS_SESSION_TASK_NAME, ignore_result=True)
def reprocess_session(session_job_id: str, mode: str, claim_token: str) -> None:
    """Copy a live session's recording into the file job it is owed, under the reconciler's
    claim; a failure is logged and left to the next claim (the reconciler's sweep)."""
    reprocess_claimed(FinishContext.of(current_runtime(get_settings()), app), session_job_id, mode, claim_token)
