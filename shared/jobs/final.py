"""A job's final status (succeeded, failed, canceled): the one place it is written, on both
sides of the queue.

Ending a job is: the conditional transition -> the status published on the job's channel
-> its webhook events queued. The API (a client's cancel, a live session whose worker is
gone, a job whose task could not be sent), the worker's completion service and the
reconciler all end jobs here, so that sequence exists once. Only the caller whose
transition wins does the steps after it; side effects never fail the job.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery

from shared.config import Settings
from shared.db.models import TERMINAL_STATUSES, JobStatus, utc_now
from shared.db.repository import JobRepository
from shared.jobs.dispatch import send_pending_webhooks
from shared.jobs.events import publish_status


@dataclass(frozen=True, kw_only=True)
class EndContext:
    """What ending a job touches."""

    settings: Settings
    jobs: JobRepository
    #: Where the status is published; None: nobody to tell (the broker itself just failed).
    redis: redis.Redis | None
    #: Sends the job's webhook tasks; None: the reconciler's sweep sends them.
    celery: Celery | None = None


def end_job(ctx: EndContext, job_id: str, status: JobStatus, **fields: object) -> bool:
    """Move the job to the final `status` (with `fields` on its row), then publish it and
    queue its webhooks; True when this call's transition won."""
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"{status.value} is not a final status")
    if not ctx.jobs.transition(job_id, status, finished_at=utc_now(), **fields):
        return False
    if ctx.redis is not None:
        publish_status(ctx.redis, job_id, status)
    send_pending_webhooks(ctx.celery, ctx.settings, ctx.jobs.session_factory, job_id)
    return True


def fail_job(ctx: EndContext, job_id: str, reason: str, **fields: object) -> bool:
    """Fail the job with a reason a person can act on; True when this call failed it."""
    return end_job(ctx, job_id, JobStatus.FAILED, error=reason, **fields)


def cancel_job(ctx: EndContext, job_id: str, reason: str) -> bool:
    """Cancel a queued or running job; its stored objects are the caller's to delete."""
    return end_job(ctx, job_id, JobStatus.CANCELED, error=reason)
