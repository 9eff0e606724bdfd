"""The workers' metrics: jobs, audio, models, stream sessions and webhooks.

The metric objects are made on first use, not at import: Celery imports the task modules
(and so this one) before its `celeryd_init` hook names the node's metrics directory, and
prometheus_client must not be imported before that (see shared.metrics.process_group).
Recording never raises: a metric that cannot be written (a full disk) must not fail a job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

#: Seconds a job waits or runs: from a sentence (well under a second) to a long recording.
DURATION_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0)
#: Processing time over audio duration; below 1 is faster than real time.
REAL_TIME_FACTOR_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)
MODEL_LOAD_BUCKETS_S = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
FIRST_PARTIAL_BUCKETS_S = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


@dataclass(frozen=True)
class WorkerMetrics:
    jobs_finished: Counter
    queue_wait: Histogram
    processing: Histogram
    real_time_factor: Histogram
    audio_processed: Counter
    model_load: Histogram
    stream_sessions_active: Gauge
    stream_first_partial: Histogram
    webhook_deliveries: Counter


@lru_cache(maxsize=1)
def worker_metrics() -> WorkerMetrics:
    from prometheus_client import Counter, Gauge, Histogram

    return WorkerMetrics(
        jobs_finished=Counter("oddasr_jobs_finished_total",
                              "Jobs that ended on a worker, by final status (canceled: while a worker ran it).",
                              ["queue", "mode", "status"]),
        queue_wait=Histogram("oddasr_job_queue_wait_seconds",
                             "Time from a job's submission to a worker starting it (started_at - created_at).",
                             ["queue", "mode"], buckets=DURATION_BUCKETS_S),
        processing=Histogram("oddasr_job_processing_seconds",
                             "Time a worker spent on a job that succeeded, from its start to its stored transcript.",
                             ["queue", "mode"], buckets=DURATION_BUCKETS_S),
        real_time_factor=Histogram("oddasr_job_real_time_factor",
                                   "Processing time over audio duration of succeeded jobs (below 1: faster than "
                                   "real time).", ["queue", "mode"], buckets=REAL_TIME_FACTOR_BUCKETS),
        audio_processed=Counter("oddasr_audio_processed_seconds_total",
                                "Seconds of audio in jobs that succeeded (file, sentence and stream).",
                                ["queue", "mode"]),
        model_load=Histogram("oddasr_model_load_seconds", "Time a worker process took to load its engine.",
                             ["engine"], buckets=MODEL_LOAD_BUCKETS_S),
        stream_sessions_active=Gauge("oddasr_stream_sessions_active",
                                     "Live sessions the stream worker processes are running now.",
                                     multiprocess_mode="livesum"),
        stream_first_partial=Histogram("oddasr_stream_first_partial_seconds",
                                       "Time from a session's first audio frame to its first result (a partial, "
                                       "or a final when none came first) leaving the worker.",
                                       buckets=FIRST_PARTIAL_BUCKETS_S),
        webhook_deliveries=Counter("oddasr_webhook_deliveries_total",
                                   "Webhook delivery attempts by outcome (delivered, retry, failed, gone).",
                                   ["outcome"]),
    )


def _safely(record: Callable[[WorkerMetrics], object]) -> None:
    try:
        record(worker_metrics())
    except Exception:  # metrics are a side effect: they never fail a job or a session
        logger.warning("could not record a metric", exc_info=True)


def record_job_started(queue: str, mode: str, created_at: datetime | None, started_at: datetime) -> None:
    if created_at is None:
        return
    wait_s = max(0.0, (started_at - created_at).total_seconds())
    _safely(lambda m: m.queue_wait.labels(queue, mode).observe(wait_s))


def record_job_finished(queue: str, mode: str, status: str, *, audio_s: float | None = None,
                        processing_s: float | None = None) -> None:
    """A final status this process wrote; `processing_s` only for transcriptions timed end
    to end (a live session's wall time says nothing about speed)."""

    def record(m: WorkerMetrics) -> None:
        m.jobs_finished.labels(queue, mode, status).inc()
        if audio_s:
            m.audio_processed.labels(queue, mode).inc(audio_s)
        if processing_s is not None:
            m.processing.labels(queue, mode).observe(processing_s)
            if audio_s:
                m.real_time_factor.labels(queue, mode).observe(processing_s / audio_s)

    _safely(record)


def record_model_load(engine: str, load_s: float) -> None:
    _safely(lambda m: m.model_load.labels(engine).observe(load_s))


def stream_session_started() -> None:
    _safely(lambda m: m.stream_sessions_active.inc())


def stream_session_ended() -> None:
    _safely(lambda m: m.stream_sessions_active.dec())


def record_first_partial(latency_s: float) -> None:
    _safely(lambda m: m.stream_first_partial.observe(latency_s))


def record_webhook_attempt(outcome: str) -> None:
    _safely(lambda m: m.webhook_deliveries.labels(outcome).inc())
