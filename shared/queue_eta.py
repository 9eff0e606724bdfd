"""When a job should start and finish: pure arithmetic over a queue's backlog, its running
jobs, its live worker processes and its measured real-time factor.

Kept apart from any I/O so the estimate can be tested exactly. Every function answers None
rather than a guess when an input is unknown (no measurement yet, no live worker): a client
is better served by "unknown" than by an invented number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Bisection steps of `start_delay_s`; 60 halve any span far below a millisecond.
_BISECTION_STEPS = 60


@dataclass(frozen=True)
class RunningJob:
    """A job a worker process holds now."""

    audio_s: float
    elapsed_s: float
    progress: float


@dataclass(frozen=True)
class Estimate:
    """Seconds from now; None where the inputs cannot tell."""

    start_s: float | None
    finish_s: float | None


UNKNOWN = Estimate(None, None)


def remaining_s(job: RunningJob, rtf: float, overhead_s: float = 0.0) -> float:
    """Expected seconds left of a running job: its expected total (overhead + RTF x audio)
    less the time it has run. Past that total, its own progress extrapolates the rest (a job
    slower than the queue's average is not about to finish just because the average says so)."""
    expected_s = overhead_s + rtf * max(job.audio_s, 0.0)
    left_s = expected_s - job.elapsed_s
    if left_s > 0:
        return left_s
    if 0 < job.progress < 1:
        return job.elapsed_s * (1 - job.progress) / job.progress
    return 0.0


def start_delay_s(free_in_s: Sequence[float], ahead_jobs: int, mean_job_s: float) -> float:
    """Seconds until the job with `ahead_jobs` before it starts, when each process becomes
    free after `free_in_s[i]` seconds and every job ahead takes `mean_job_s`.

    Processes take jobs in order as they free up, so process i starts jobs at
    f_i, f_i + d, f_i + 2d, ...; the job starts at the (ahead_jobs + 1)-th smallest of those
    times, found by bisection on the count of starts up to T: O(processes), whatever the
    backlog (a poll at position 9,999 costs what one at position 0 does)."""
    if not free_in_s:
        raise ValueError("start_delay_s needs at least one process")
    earliest_s = min(free_in_s)
    if ahead_jobs <= 0 or mean_job_s <= 0:
        return max(earliest_s, 0.0)
    wanted = ahead_jobs + 1

    def starts_by(t_s: float) -> int:
        return sum(int((t_s - f_s) / mean_job_s + 1e-9) + 1 for f_s in free_in_s if f_s <= t_s)

    low_s, high_s = earliest_s, earliest_s + ahead_jobs * mean_job_s  # one process alone gets there
    for _ in range(_BISECTION_STEPS):
        middle_s = (low_s + high_s) / 2
        if starts_by(middle_s) >= wanted:
            high_s = middle_s
        else:
            low_s = middle_s
    return max(high_s, 0.0)


def estimate_queued(*, processes: int, running: Sequence[RunningJob], ahead_jobs: int, ahead_audio_s: float,
                    own_audio_s: float | None, rtf: float | None, overhead_s: float = 0.0) -> Estimate:
    """Start and finish of a queued job. The jobs ahead are taken at their mean length (the
    database gives their count and total audio, which an index answers without reading
    each one). More running jobs than live processes means processes presence does not see
    yet (a node between heartbeats); each running job then counts as one."""
    if rtf is None or processes <= 0:
        return UNKNOWN
    slots = max(processes, len(running))
    free_in_s = [remaining_s(job, rtf, overhead_s) for job in running] + [0.0] * (slots - len(running))
    mean_job_s = overhead_s + rtf * ahead_audio_s / ahead_jobs if ahead_jobs > 0 else 0.0
    start_s = start_delay_s(free_in_s, ahead_jobs, mean_job_s)
    return Estimate(start_s, start_s + overhead_s + rtf * max(own_audio_s or 0.0, 0.0))


def estimate_running(job: RunningJob, rtf: float | None, overhead_s: float = 0.0) -> Estimate:
    """A running job started already (start 0); its finish is its expected remaining time."""
    if rtf is None:
        return UNKNOWN
    return Estimate(0.0, remaining_s(job, rtf, overhead_s))


def backlog_wait_s(*, processes: int, running: Sequence[RunningJob], queued_jobs: int, queued_audio_s: float,
                   rtf: float | None, overhead_s: float = 0.0) -> float | None:
    """How long a job submitted now would wait before it starts: the queued job behind all."""
    return estimate_queued(processes=processes, running=running, ahead_jobs=queued_jobs,
                           ahead_audio_s=queued_audio_s, own_audio_s=0.0, rtf=rtf, overhead_s=overhead_s).start_s
