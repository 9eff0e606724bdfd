"""Where a queue stands, and where a job stands in it: the API's reading of the database
(backlog, running jobs) and of Redis (live worker processes, measured speed), joined by the
pure arithmetic of `shared.queue_eta`.

Redis being away never fails a poll: the position still comes from the database, and the
estimates say null (unknown), as they do before any job has measured the queue's speed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis

from api.deps import ApiDeps
from api.response_models.service import QueueStatus
from shared import queue_eta, queue_stats, redis_keys
from shared.db.models import Job, JobStatus
from shared.db.queue_backlog import Backlog, QueueBacklogRepository, running_job
from shared.db.repository import STREAM_MODE
from shared.queue_stats import NO_MEASUREMENTS, QueueMeasurements
from shared.worker_presence import live_workers, process_count

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerView:
    """What Redis says of a queue: its live nodes, their processes, its measured speed."""

    workers: list[str] = field(default_factory=list)
    processes: int = 0
    measurements: QueueMeasurements = NO_MEASUREMENTS


def read_worker_view(client: redis.Redis, queue: str) -> WorkerView:
    """Two Redis round trips (presence and the window together, then the nodes' process
    counts); an unreachable Redis reads as an unknown view, never an error."""
    try:
        workers = live_workers(client, queue)
        with client.pipeline(transaction=False) as pipe:
            pipe.lrange(redis_keys.queue_completions_key(queue), 0, queue_stats.COMPLETIONS_KEPT - 1)
            if workers:
                pipe.hmget(redis_keys.queue_processes_key(queue), workers)
            replies = pipe.execute()
    except redis.RedisError as exc:
        logger.warning("queue %s: no worker view, Redis unreachable (%s)", queue, exc)
        return WorkerView()
    completions = [c for c in map(queue_stats.Completion.from_json, replies[0]) if c is not None]
    counts = replies[1] if workers else []
    processes = sum(process_count(raw) for raw in counts)
    return WorkerView(workers, processes, queue_stats.measure(completions))


def _round_s(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


NO_ESTIMATE: dict[str, object] = {"queue_position": None, "estimated_start_s": None, "estimated_finish_s": None}


def job_estimate(deps: ApiDeps, job: Job) -> dict[str, object]:
    """`queue_position` (0: next), `estimated_start_s`, `estimated_finish_s` (seconds from
    now) of a queued job; the finish alone of a running one; nulls otherwise or when unknown."""
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING) or job.mode == STREAM_MODE or not job.queue:
        return dict(NO_ESTIMATE)  # a live session ends when its client stops: nothing to estimate
    backlogs = QueueBacklogRepository(deps.jobs.session_factory)
    view = read_worker_view(deps.redis, job.queue)
    rtf, overhead_s = view.measurements.real_time_factor, view.measurements.job_overhead_s
    if job.status == JobStatus.RUNNING:
        estimate = queue_eta.estimate_running(running_job(job.audio_duration_s, job.progress, job.started_at), rtf,
                                              overhead_s)
        return {"queue_position": None, "estimated_start_s": None, "estimated_finish_s": _round_s(estimate.finish_s)}
    ahead = backlogs.ahead_of(job)
    estimate = queue_eta.UNKNOWN
    if rtf is not None and view.processes > 0:
        estimate = queue_eta.estimate_queued(processes=view.processes, running=backlogs.running(job.queue),
                                             ahead_jobs=ahead.jobs, ahead_audio_s=ahead.audio_s,
                                             own_audio_s=job.audio_duration_s, rtf=rtf, overhead_s=overhead_s)
    return {"queue_position": ahead.jobs, "estimated_start_s": _round_s(estimate.start_s),
            "estimated_finish_s": _round_s(estimate.finish_s)}


@dataclass(frozen=True)
class QueueSummary:
    """One queue as GET /v1/queues shows it."""

    name: str
    queued: Backlog
    running_jobs: int
    view: WorkerView
    estimated_wait_s: float | None


def summarize_queue(deps: ApiDeps, queue: str) -> QueueSummary:
    backlogs = QueueBacklogRepository(deps.jobs.session_factory)
    queued = backlogs.queued(queue)
    running = backlogs.running(queue)
    view = read_worker_view(deps.redis, queue)
    wait_s = queue_eta.backlog_wait_s(processes=view.processes, running=running, queued_jobs=queued.jobs,
                                      queued_audio_s=queued.audio_s, rtf=view.measurements.real_time_factor,
                                      overhead_s=view.measurements.job_overhead_s)
    return QueueSummary(queue, queued, len(running), view, wait_s)


def queue_status(summary: QueueSummary, max_jobs: int, max_work_s: float) -> QueueStatus:
    measured = summary.view.measurements
    rtf = measured.real_time_factor
    return QueueStatus(
        depth=summary.queued.jobs,
        queued_audio_s=round(summary.queued.audio_s, 1),
        running=summary.running_jobs,
        workers=len(summary.view.workers),
        processes=summary.view.processes,
        real_time_factor=None if rtf is None else round(rtf, 4),
        job_overhead_s=None if rtf is None else round(measured.job_overhead_s, 2),
        samples=measured.samples,
        drain_jobs_per_s=None if measured.drain_jobs_per_s is None else round(measured.drain_jobs_per_s, 4),
        drain_audio_s_per_s=None if measured.drain_audio_s_per_s is None else round(measured.drain_audio_s_per_s, 3),
        estimated_wait_s=_round_s(summary.estimated_wait_s),
        backlog_work_s=None if rtf is None else round(rtf * summary.queued.audio_s, 1),
        max_backlog_jobs=max_jobs,
        max_backlog_work_s=max_work_s,
    )
