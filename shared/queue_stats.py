"""What each queue's workers have been measuring: the rolling window of finished jobs, and
the figures derived from it (real-time factor, drain rate).

Workers append one `Completion` per succeeded job to a capped Redis list per queue
(`redis_keys.queue_completions_key`); readers (queue position, /v1/queues, admission) fetch
the window with one LRANGE and compute everything here with pure functions, so the maths is
unit-tested without Redis and the reading costs one round trip whatever the backlog.

Why a window of recent jobs rather than a lifetime average: the speed of a queue changes
with its workers (a GPU node joins, a model is swapped), and a poll wants today's figure.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from shared import redis_keys
from shared.redis_clock import redis_now_s

logger = logging.getLogger(__name__)

#: Finished jobs kept per queue: enough to smooth one odd job, few enough to follow a change.
COMPLETIONS_KEPT = 50
#: The window expires when a queue finishes nothing for this long (a queue idle for a week
#: should not claim last week's speed forever; one job measures it again).
COMPLETIONS_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Completion:
    """One succeeded job as its queue's statistics see it."""

    audio_s: float
    processing_s: float
    finished_at_s: float  # unix time on Redis' clock: the workers that finish jobs run on different hosts

    def to_json(self) -> str:
        return json.dumps({"audio_s": round(self.audio_s, 3), "processing_s": round(self.processing_s, 3),
                           "finished_at_s": round(self.finished_at_s, 3)})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Completion | None:
        """None for an entry that does not parse (a hand-edited or older entry is skipped)."""
        try:
            data = json.loads(raw)
            return cls(float(data["audio_s"]), float(data["processing_s"]), float(data["finished_at_s"]))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class QueueMeasurements:
    """Figures derived from a queue's window; None where the window cannot tell yet."""

    samples: int
    #: Processing seconds per audio second: the slope of processing time over audio length
    #: (or, where the window's lengths are too alike to fit a line, a ratio of sums).
    real_time_factor: float | None
    #: Jobs finished per second over the window (needs two completions: one has no span).
    drain_jobs_per_s: float | None
    #: Audio seconds finished per second over the window.
    drain_audio_s_per_s: float | None
    #: Seconds every job costs whatever its length (loading the audio, VAD, the first window):
    #: a ratio alone, measured on short jobs, put a 60 s job at 38 s that took 10.
    job_overhead_s: float = 0.0

    def job_seconds(self, audio_s: float) -> float | None:
        """Expected processing seconds of a job of `audio_s`; None before any measurement."""
        if self.real_time_factor is None:
            return None
        return self.job_overhead_s + self.real_time_factor * max(audio_s, 0.0)

    @property
    def measured(self) -> bool:
        return self.real_time_factor is not None


NO_MEASUREMENTS = QueueMeasurements(samples=0, real_time_factor=None, drain_jobs_per_s=None, drain_audio_s_per_s=None)

#: A span shorter than this (jobs finished in the same instant) gives no rate.
_MIN_SPAN_S = 1e-3
#: A line is fitted only to a window whose longest job is this many times its shortest, with
#: this many jobs: alike lengths tell the slope from the intercept too poorly.
_FIT_MIN_LENGTH_RATIO = 2.0
_FIT_MIN_SAMPLES = 3


def fit_job_cost(completions: Sequence[Completion]) -> tuple[float, float]:
    """(overhead_s, rtf) with processing ~ overhead + rtf x audio, least squares over the
    window; the ratio of sums (overhead 0) where a line cannot be told or would be absurd (a
    negative overhead or slope)."""
    audio_total_s = sum(c.audio_s for c in completions)
    ratio = sum(c.processing_s for c in completions) / audio_total_s
    lengths_s = [c.audio_s for c in completions]
    if len(completions) < _FIT_MIN_SAMPLES or max(lengths_s) < _FIT_MIN_LENGTH_RATIO * min(lengths_s):
        return 0.0, ratio
    mean_audio_s = audio_total_s / len(completions)
    mean_processing_s = sum(c.processing_s for c in completions) / len(completions)
    spread = sum((c.audio_s - mean_audio_s) ** 2 for c in completions)
    slope = sum((c.audio_s - mean_audio_s) * (c.processing_s - mean_processing_s) for c in completions) / spread
    overhead_s = mean_processing_s - slope * mean_audio_s
    if slope <= 0 or overhead_s < 0:
        return 0.0, ratio
    return overhead_s, slope


def measure(completions: Sequence[Completion]) -> QueueMeasurements:
    """The queue's RTF and drain rate from its recent completions (any order).

    The drain rate counts the jobs after the oldest one over the span from the oldest finish
    to the newest: n completions bound n - 1 intervals. It measures what the workers did
    while busy; a queue that sat empty between jobs looks slower than its capacity, which
    only errs on the side of a longer Retry-After.
    """
    usable = [c for c in completions if c.audio_s > 0 and c.processing_s >= 0]
    if not usable:
        return NO_MEASUREMENTS
    overhead_s, rtf = fit_job_cost(usable)
    ordered = sorted(usable, key=lambda c: c.finished_at_s)
    span_s = ordered[-1].finished_at_s - ordered[0].finished_at_s
    if len(ordered) < 2 or span_s < _MIN_SPAN_S:
        return QueueMeasurements(len(usable), rtf, None, None, overhead_s)
    later = ordered[1:]
    return QueueMeasurements(len(usable), rtf, len(later) / span_s, sum(c.audio_s for c in later) / span_s,
                             overhead_s)


# --- Redis: one write per finished job, one read per question ---------------------------

def record_completion(client: redis.Redis, queue: str, completion: Completion) -> None:
    """Append a finished job to its queue's window. Raises redis errors: the caller decides
    (a worker logs and goes on; statistics never fail a job)."""
    key = redis_keys.queue_completions_key(queue)
    with client.pipeline(transaction=False) as pipe:
        pipe.lpush(key, completion.to_json())
        pipe.ltrim(key, 0, COMPLETIONS_KEPT - 1)
        pipe.expire(key, COMPLETIONS_TTL_S)
        pipe.execute()


def read_completions(client: redis.Redis, queue: str) -> list[Completion]:
    raw = client.lrange(redis_keys.queue_completions_key(queue), 0, COMPLETIONS_KEPT - 1)
    return [c for c in (Completion.from_json(item) for item in raw) if c is not None]


def record_completion_quietly(client: redis.Redis, queue: str, audio_s: float | None, processing_s: float,
                              now_s: float | None = None) -> None:
    """`record_completion` for a worker that just finished a job: any failure is logged and
    swallowed, since a lost sample only blurs an estimate while a raise would fail the job."""
    if not queue or not audio_s:
        return
    try:
        finished_at_s = redis_now_s(client) if now_s is None else now_s
        record_completion(client, queue, Completion(audio_s, processing_s, finished_at_s))
    except Exception:  # Redis down or slow: the job succeeded all the same
        logger.warning("could not record the statistics of a job on queue %s", queue, exc_info=True)
