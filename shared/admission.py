"""Backlog admission: a queue past its configured backlog refuses new jobs with 503 and a
Retry-After from its measured drain rate.

Why refuse at all: an unbounded queue makes every job late, the ones already waiting
included; a clear "full, come back in N s" lets clients (and their retry logic) spread the
load over time instead. The check runs before the upload is stored, costs one indexed count
and one Redis read, and limits on the backlog before the new job (so one long file is never
refused forever by an empty queue). In shared, not the API: the jobs a worker makes (a live
session's reprocessing) go through the same door.
"""

from __future__ import annotations

import logging
import math

import redis
from sqlalchemy.orm import Session, sessionmaker

from shared import queue_stats
from shared.config import Settings
from shared.db.queue_backlog import QueueBacklogRepository
from shared.errors import ServiceUnavailableError
from shared.queue_stats import NO_MEASUREMENTS, QueueMeasurements

logger = logging.getLogger(__name__)

#: Before any job measured the queue, its work is taken as its audio (real time, RTF 1).
UNMEASURED_RTF = 1.0
#: No worker is slower than this (processing seconds per audio second); a backlog whose audio
#: is under max_work_s / this cannot be full, so its measurements need not be read.
MAX_PLAUSIBLE_RTF = 20.0
#: A computed Retry-After is held to this (a client re-asks and gets a fresh figure).
MAX_RETRY_AFTER_S = 24 * 3600.0


def _measurements(client: redis.Redis, queue: str) -> QueueMeasurements:
    try:
        return queue_stats.measure(queue_stats.read_completions(client, queue))
    except redis.RedisError:
        return NO_MEASUREMENTS  # the limit on jobs still holds; the send that follows reports Redis


def _retry_after_s(excess: float, rate_per_s: float | None, fallback_s: float) -> float:
    """Seconds until `excess` (jobs or audio seconds) drains at the measured rate; the
    configured fallback while the queue has no measured rate."""
    if not rate_per_s or rate_per_s <= 0:
        return fallback_s
    return min(max(1.0, math.ceil(excess / rate_per_s)), MAX_RETRY_AFTER_S)


def check_backlog(settings: Settings, session_factory: sessionmaker[Session], client: redis.Redis,
                  queue: str) -> None:
    """Raise 503 with Retry-After when `queue`'s backlog has reached either of its limits."""
    max_jobs = settings.max_backlog_jobs_for(queue)
    max_work_s = settings.max_backlog_work_s_for(queue)
    if not max_jobs and not max_work_s:
        return
    backlog = QueueBacklogRepository(session_factory).queued(queue)
    if max_jobs and backlog.jobs >= max_jobs:
        measured = _measurements(client, queue)
        retry_s = _retry_after_s(backlog.jobs - max_jobs + 1, measured.drain_jobs_per_s,
                                 settings.queue_full_retry_after_s)
        logger.warning("queue %s full: %d jobs queued (limit %d); Retry-After %.0f s", queue, backlog.jobs,
                       max_jobs, retry_s)
        raise ServiceUnavailableError(
            f"the {queue} queue is full: {backlog.jobs} jobs are waiting and its limit is {max_jobs}"
            f" (queue_max_backlog_jobs); try again in {math.ceil(retry_s)} s", retry_after_s=retry_s)
    if not max_work_s or backlog.audio_s * MAX_PLAUSIBLE_RTF < max_work_s:
        return  # far from full whatever the measured speed: no Redis read on the common path
    measured = _measurements(client, queue)
    rtf = measured.real_time_factor or UNMEASURED_RTF
    work_s = rtf * backlog.audio_s
    if work_s < max_work_s:
        return
    excess_audio_s = (work_s - max_work_s) / rtf + 1e-3
    retry_s = _retry_after_s(excess_audio_s, measured.drain_audio_s_per_s, settings.queue_full_retry_after_s)
    logger.warning("queue %s full: %.0f s of work queued (limit %.0f s); Retry-After %.0f s", queue, work_s,
                   max_work_s, retry_s)
    raise ServiceUnavailableError(
        f"the {queue} queue is full: about {work_s:.0f} s of work is waiting and its limit is {max_work_s:.0f} s"
        f" (queue_max_backlog_work_s); try again in {math.ceil(retry_s)} s", retry_after_s=retry_s)
