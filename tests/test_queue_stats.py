"""The queue figures and estimates, exactly: RTF and drain rate from a window of completions,
start times against a brute-force simulation of the workers, the window in a real Redis,
the workers' process counts, and positions from the database's index on SQLite and
PostgreSQL."""

from __future__ import annotations

import heapq
import random
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from shared import queue_stats, redis_keys
from shared.db.migrate import upgrade_to_head
from shared.db.models import JobStatus, utc_now
from shared.db.queue_backlog import QueueBacklogRepository
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.queue_eta import RunningJob, estimate_queued, estimate_running, remaining_s, start_delay_s
from shared.queue_stats import Completion, measure
from shared.worker_presence import forget_worker, live_processes, live_workers, record_heartbeat
from tests.support.job_rows import job_row


def test_measure_takes_the_ratio_of_sums_and_the_rate_over_the_span() -> None:
    """Lengths too alike to fit a line (15-20 s): the ratio of sums, no overhead."""
    window = [Completion(15.0, 2.0, 100.0), Completion(20.0, 3.0, 104.0), Completion(17.0, 1.0, 102.0)]
    figures = measure(window)
    assert figures.samples == 3
    assert figures.real_time_factor == pytest.approx(6.0 / 52.0) and figures.job_overhead_s == 0.0
    # Three finishes bound two intervals over 4 s; the audio after the oldest finish counts.
    assert figures.drain_jobs_per_s == pytest.approx(2 / 4.0)
    assert figures.drain_audio_s_per_s == pytest.approx(37.0 / 4.0)


def test_a_mixed_window_is_fitted_with_a_per_job_overhead() -> None:
    """Processing = 1.5 s + 0.1 x audio. A ratio of sums (0.161) says a 60 s job takes 9.7 s
    and a 3 s one 0.5 s; the line says 7.5 s and 1.8 s, what they take."""
    window = [Completion(audio_s, 1.5 + 0.1 * audio_s, 100.0 + index)
              for index, audio_s in enumerate([3.0, 60.0, 5.0, 30.0])]
    figures = measure(window)
    assert figures.job_overhead_s == pytest.approx(1.5) and figures.real_time_factor == pytest.approx(0.1)
    assert figures.job_seconds(60.0) == pytest.approx(7.5) and figures.job_seconds(3.0) == pytest.approx(1.8)
    queued = estimate_queued(processes=1, running=[], ahead_jobs=2, ahead_audio_s=63.0, own_audio_s=60.0,
                             rtf=figures.real_time_factor, overhead_s=figures.job_overhead_s)
    # Two jobs ahead of 31.5 s mean: 2 x (1.5 + 3.15) s; then its own 7.5 s.
    assert queued.start_s == pytest.approx(9.3) and queued.finish_s == pytest.approx(16.8)
    started = estimate_running(RunningJob(audio_s=5.0, elapsed_s=0.0, progress=0.0), figures.real_time_factor,
                               figures.job_overhead_s)
    assert started.finish_s == pytest.approx(2.0)  # not 0.1 s: the overhead is still ahead of it


def test_a_line_that_would_be_absurd_falls_back_to_the_ratio() -> None:
    """Short jobs slower than long ones (a cold start in the window): a negative slope is noise."""
    window = [Completion(3.0, 9.0, 100.0), Completion(60.0, 6.0, 101.0), Completion(30.0, 3.0, 102.0)]
    figures = measure(window)
    assert figures.job_overhead_s == 0.0 and figures.real_time_factor == pytest.approx(18.0 / 93.0)


def test_measure_says_unknown_rather_than_inventing() -> None:
    assert measure([]).real_time_factor is None and not measure([]).measured
    one = measure([Completion(5.0, 1.0, 10.0)])
    assert one.real_time_factor == pytest.approx(0.2)
    assert one.drain_jobs_per_s is None and one.drain_audio_s_per_s is None
    same_instant = measure([Completion(5.0, 1.0, 10.0), Completion(5.0, 1.0, 10.0)])
    assert same_instant.drain_jobs_per_s is None
    assert measure([Completion(0.0, 1.0, 10.0)]).real_time_factor is None  # no audio, no ratio


def test_a_broken_window_entry_is_skipped() -> None:
    assert Completion.from_json("not json") is None
    assert Completion.from_json('{"audio_s": 1}') is None
    entry = Completion(1.5, 0.25, 12.0)
    assert Completion.from_json(entry.to_json()) == entry


def simulated_start_s(free_in_s: list[float], durations_s: list[float]) -> float:
    """The workers by brute force: each job ahead goes to the process free first."""
    heap = list(free_in_s)
    heapq.heapify(heap)
    for duration_s in durations_s:
        heapq.heappush(heap, heapq.heappop(heap) + duration_s)
    return heap[0]


@pytest.mark.parametrize("seed", range(20))
def test_start_delay_matches_a_simulation_of_the_processes(seed: int) -> None:
    rng = random.Random(seed)
    processes = rng.randint(1, 6)
    free_in_s = [rng.choice([0.0, rng.uniform(0, 30)]) for _ in range(processes)]
    ahead = rng.randint(0, 300)
    mean_s = rng.uniform(0.5, 20)
    assert start_delay_s(free_in_s, ahead, mean_s) == pytest.approx(
        simulated_start_s(free_in_s, [mean_s] * ahead), abs=1e-6)


def test_start_delay_on_a_single_process_is_the_work_ahead() -> None:
    assert start_delay_s([3.0], 4, 2.5) == pytest.approx(3.0 + 4 * 2.5)
    assert start_delay_s([0.0, 0.0], 0, 5.0) == 0.0  # a free process: next
    assert start_delay_s([0.0, 7.0], 1, 5.0) == pytest.approx(5.0)  # behind one job, on the free process


def test_running_jobs_remaining_time() -> None:
    assert remaining_s(RunningJob(audio_s=100.0, elapsed_s=4.0, progress=0.1), rtf=0.1) == pytest.approx(6.0)
    # Slower than average: its own progress extrapolates what is left.
    assert remaining_s(RunningJob(audio_s=100.0, elapsed_s=20.0, progress=0.8), rtf=0.1) == pytest.approx(5.0)
    assert remaining_s(RunningJob(audio_s=100.0, elapsed_s=20.0, progress=0.0), rtf=0.1) == 0.0
    assert estimate_running(RunningJob(10.0, 1.0, 0.0), rtf=None).finish_s is None


def test_queued_estimate_joins_running_backlog_and_own_length() -> None:
    estimate = estimate_queued(processes=1, running=[RunningJob(audio_s=20.0, elapsed_s=1.0, progress=0.0)],
                               ahead_jobs=3, ahead_audio_s=30.0, own_audio_s=5.0, rtf=0.5)
    assert estimate.start_s == pytest.approx(9.0 + 15.0)
    assert estimate.finish_s == pytest.approx(9.0 + 15.0 + 2.5)
    unknown = dict(running=[], ahead_jobs=3, ahead_audio_s=30.0, own_audio_s=5.0)
    assert estimate_queued(processes=1, rtf=None, **unknown).start_s is None  # nothing measured yet
    assert estimate_queued(processes=0, rtf=0.5, **unknown).finish_s is None  # no worker alive


@pytest.fixture
def client(redis_server) -> Iterator[redis.Redis]:  # type: ignore[no-untyped-def]
    connection = redis.Redis.from_url(redis_server.url)
    yield connection
    connection.close()


def test_the_window_in_redis_is_capped_newest_first(client: redis.Redis) -> None:
    queue = f"q-{uuid.uuid4().hex[:8]}"
    for index in range(queue_stats.COMPLETIONS_KEPT + 7):
        queue_stats.record_completion(client, queue, Completion(1.0, 0.1, 1000.0 + index))
    window = queue_stats.read_completions(client, queue)
    assert len(window) == queue_stats.COMPLETIONS_KEPT
    assert window[0].finished_at_s == 1000.0 + queue_stats.COMPLETIONS_KEPT + 6
    assert 0 < client.ttl(redis_keys.queue_completions_key(queue)) <= queue_stats.COMPLETIONS_TTL_S


def test_recording_never_raises_when_redis_is_away() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    queue_stats.record_completion_quietly(dead, "cpu", 3.0, 0.5)  # logs, returns


def test_presence_counts_each_nodes_processes(client: redis.Redis) -> None:
    queue = f"q-{uuid.uuid4().hex[:8]}"
    record_heartbeat(client, "node-a", [queue], processes=3)
    record_heartbeat(client, "node-b", [queue])  # an older worker that does not say
    assert live_workers(client, queue) == ["node-a", "node-b"]
    assert live_processes(client, queue) == 4
    record_heartbeat(client, "node-c", [queue], now_s=time.time() - 60, processes=8)  # long gone
    assert live_processes(client, queue) == 4
    forget_worker(client, "node-a", [queue])
    assert live_processes(client, queue) == 1
    assert client.hget(redis_keys.queue_processes_key(queue), "node-a") is None


@pytest.fixture
def repo(database_url: str) -> Iterator[JobRepository]:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    yield JobRepository(make_session_factory(engine))
    engine.dispose()


def test_positions_and_backlog_come_from_the_database(repo: JobRepository) -> None:
    created = utc_now() - timedelta(minutes=5)
    jobs = []
    for index in range(6):
        # Two pairs share their creation instant: the id orders them.
        at = created + timedelta(seconds=index // 2 * 2)
        jobs.append(repo.create(job_row(duration_s=10.0 + index, created_at=at)))
    repo.create(job_row(queue="gpu", duration_s=99.0, created_at=created))
    backlogs = QueueBacklogRepository(repo.session_factory)
    ordered = sorted(jobs, key=lambda j: (j.created_at, j.id))
    positions = [backlogs.ahead_of(repo.get(job.id)).jobs for job in ordered]
    assert positions == list(range(6))
    last = backlogs.ahead_of(repo.get(ordered[-1].id))
    assert last.audio_s == pytest.approx(sum(j.audio_duration_s for j in ordered[:-1]))
    assert backlogs.queued("cpu").jobs == 6 and backlogs.queued("gpu").jobs == 1
    # The first one starts: everyone behind it moves up, and it shows as running.
    assert repo.transition(ordered[0].id, JobStatus.RUNNING, started_at=utc_now() - timedelta(seconds=3))
    assert backlogs.ahead_of(repo.get(ordered[-1].id)).jobs == 4
    running = backlogs.running("cpu")
    assert len(running) == 1 and 2.0 < running[0].elapsed_s < 60.0
