"""Give jobs whose worker vanished back to the queue.

A worker process that dies is handled by Celery (the job is rejected and redelivered at
once). A whole machine that dies is not: its unacknowledged job comes back only after
Redis' visibility timeout, which must outlast the longest job (hours). Live workers look
for running jobs whose row went quiet and send them again; the redelivered task restarts the
job (running -> running), and the original message, if it ever returns, finds the job
finished and does nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Celery

from shared.db.models import utc_now
from shared.db.repository import JobRepository
from shared.schemas import TRANSCRIBE_TASK_NAME

logger = logging.getLogger(__name__)


def requeue_stale_jobs(jobs: JobRepository, app: Celery, stale_after_s: float) -> list[str]:
    claimed = jobs.claim_stale_running(utc_now() - timedelta(seconds=stale_after_s))
    for job_id, queue in claimed:
        logger.warning("job %s has had no sign of life for %.0f s; sending it to %s again", job_id, stale_after_s,
                       queue)
        app.send_task(TRANSCRIBE_TASK_NAME, args=[job_id], queue=queue)
    return [job_id for job_id, _ in claimed]
