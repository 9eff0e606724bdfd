"""A job's status announced on its Redis channel: synchronous waiters wake at once, and a
live session's worker hears that its job was canceled."""

from __future__ import annotations

import logging

import redis

from shared import redis_keys
from shared.db.models import JobStatus
from shared.schemas import JobEvent

logger = logging.getLogger(__name__)


def publish_status(client: redis.Redis, job_id: str, status: JobStatus) -> None:
    """Publish the job's new status; losing the message only costs the listeners a poll."""
    try:
        client.publish(redis_keys.job_events_channel(job_id),
                       JobEvent(job_id=job_id, status=status.value).model_dump_json())
    except redis.RedisError:
        logger.warning("could not publish the %s status of job %s", status.value, job_id, exc_info=True)
