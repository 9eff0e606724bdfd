"""The tasks sent for a job, by name (the sender never imports the worker's code).

A transcribe task's id is the job id, so operators find a job in Flower by the id clients
see. A webhook task carries a delivery id of the outbox; a duplicate is harmless (the attempt
claims its delivery first), and one that is never sent is sent by the reconciler's sweep. A
reprocess task copies a live session's recording into the file job it is owed, under the
claim of the reconciler that sent it (`worker.services.reprocess_sweep`).
"""

from __future__ import annotations

import logging

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from shared.config import Settings
from shared.db.webhooks import WebhookRepository
from shared.schemas import DELIVER_WEBHOOK_TASK_NAME, REPROCESS_SESSION_TASK_NAME, TRANSCRIBE_TASK_NAME

logger = logging.getLogger(__name__)


def send_transcribe(celery: Celery, job_id: str, queue: str) -> None:
    """Send the job's transcribe task to `queue`; raises when the broker is unreachable."""
    celery.send_task(TRANSCRIBE_TASK_NAME, args=[job_id], queue=queue, task_id=job_id)


def send_webhook(celery: Celery, settings: Settings, delivery_id: str, countdown_s: float = 0.0) -> None:
    """Send one delivery attempt's task, after `countdown_s` when given."""
    celery.send_task(DELIVER_WEBHOOK_TASK_NAME, args=[delivery_id], queue=settings.webhook_queue,
                     countdown=countdown_s or None)


def send_reprocess(celery: Celery, settings: Settings, session_job_id: str, mode: str, claim_token: str) -> None:
    """Send the task that copies a live session's recording into its reprocessing job, to
    the file queue its job goes to; raises when the broker is unreachable."""
    celery.send_task(REPROCESS_SESSION_TASK_NAME, args=[session_job_id, mode, claim_token],
                     queue=settings.file_queue)


def send_pending_webhooks(celery: Celery | None, settings: Settings, session_factory: sessionmaker[Session],
                          job_id: str) -> None:
    """Queue the job's pending webhook events. Never raises: a side effect never fails the
    job or the request, and what is not sent now stays in the outbox for the reconciler
    (`celery` None: the reconciler sends them all)."""
    if celery is None:
        return
    try:
        for delivery_id in WebhookRepository(session_factory).pending_for_job(job_id):
            send_webhook(celery, settings, delivery_id)
    except Exception:
        logger.warning("could not queue the webhooks of job %s; the reconciler will", job_id, exc_info=True)
