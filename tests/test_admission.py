"""Backlog admission, queue positions and ETAs through the real app on a real Redis: a full
queue answers 503 with a computed Retry-After; queued jobs show their place; GET /v1/queues;
Redis down while a worker records its statistics does not fail the job. No worker consumes
these queues (submission only stores the audio and sends the task), so jobs stay queued and
each figure is exact."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from api.app import create_app
from shared import queue_stats
from shared.config import Settings
from shared.db.migrate import upgrade_to_head
from shared.db.models import JobStatus, utc_now
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.queue_stats import Completion
from shared.storage import make_storage
from shared.transcript import Segment, Transcript
from shared.worker_presence import record_heartbeat
from tests.support.job_rows import job_row
from tests.support.speech import synthesize
from worker.services.runtime import WorkerRuntime
from worker.services.transcription import run_transcription


@pytest.fixture(scope="module")
def clip(speech_dir: Path) -> Path:
    return synthesize("Please send the report to my office.", speech_dir / "admission-clip.wav")


@pytest.fixture
def redis_client(own_redis) -> Iterator[redis.Redis]:  # type: ignore[no-untyped-def]
    client = redis.Redis.from_url(own_redis.url)
    client.flushdb()  # this module's own server: nothing from an earlier test leaks in
    yield client
    client.close()


def make_client(tmp_path: Path, redis_url: str, **overrides: object) -> tuple[FlaskClient, Settings]:
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_url, **overrides)  # type: ignore[arg-type]
    upgrade_to_head(settings.database_url)
    return create_app(settings).test_client(), settings


def submit(client: FlaskClient, clip: Path, path: str = "/v1/jobs", field: str = "audio", **form: str):  # type: ignore[no-untyped-def]
    with clip.open("rb") as audio:
        return client.post(path, data={field: (audio, clip.name), **form}, content_type="multipart/form-data")


def seed_window(client: redis.Redis, queue: str, *, rtf: float, interval_s: float, audio_s: float = 4.0,
                count: int = 5) -> None:
    """`count` finished jobs of `audio_s` each, `interval_s` apart: drain 1/interval_s jobs/s."""
    for index in range(count):
        queue_stats.record_completion(client, queue, Completion(audio_s, rtf * audio_s, 1000.0 + index * interval_s))


def test_a_full_queue_answers_503_with_a_computed_retry_after(tmp_path: Path, own_redis, redis_client: redis.Redis,  # type: ignore[no-untyped-def]
                                                             clip: Path) -> None:
    client, _settings = make_client(tmp_path, own_redis.url, queue_max_backlog_jobs_by_queue={"cpu": 3})
    for _ in range(3):
        assert submit(client, clip).status_code == 202
    refused = submit(client, clip)
    assert refused.status_code == 503
    message = refused.get_json()["error"]
    assert "cpu queue is full" in message and "queue_max_backlog_jobs" in message and "3" in message
    assert refused.headers["Retry-After"] == "60"  # nothing measured yet: the documented fallback
    # The OpenAI-compatible endpoint goes through the same admission.
    openai = submit(client, clip, "/v1/audio/transcriptions", "file", model="whisper-1")
    assert openai.status_code == 503 and "Retry-After" in openai.headers
    # A measured drain of one job every 2 s: one job must go before a new one fits.
    seed_window(redis_client, "cpu", rtf=0.5, interval_s=2.0)
    assert submit(client, clip).headers["Retry-After"] == "2"
    listed = client.get("/v1/jobs").get_json()
    assert listed["total"] == 3  # refused uploads left no job behind
    # Other queues are not full: a sentence job still goes in.
    assert submit(client, clip, mode="sentence").status_code == 202


def test_a_queue_full_of_work_answers_503_naming_that_limit(tmp_path: Path, own_redis,  # type: ignore[no-untyped-def]
                                                            redis_client: redis.Redis, clip: Path) -> None:
    client, _settings = make_client(tmp_path, own_redis.url, queue_max_backlog_work_s_by_queue={"cpu": 1.0})
    first = submit(client, clip)
    assert first.status_code == 202  # an empty queue takes a job of any length
    audio_s = first.get_json()["audio_duration_s"]
    assert audio_s > 1.0
    seed_window(redis_client, "cpu", rtf=0.5, interval_s=1.0, audio_s=2.0)  # 2 audio s drained per s
    refused = submit(client, clip)
    assert refused.status_code == 503
    assert "queue_max_backlog_work_s" in refused.get_json()["error"]
    expected_s = max(1, -(-((0.5 * audio_s - 1.0) / 0.5) // 2.0))
    assert int(refused.headers["Retry-After"]) == pytest.approx(expected_s, abs=1)


def test_queued_jobs_show_position_and_eta_and_the_queues_their_state(  # type: ignore[no-untyped-def]
        tmp_path: Path, own_redis, redis_client: redis.Redis, clip: Path) -> None:
    client, settings = make_client(tmp_path, own_redis.url)
    created = [submit(client, clip).get_json() for _ in range(5)]
    polled = [client.get(f"/v1/jobs/{job['id']}").get_json() for job in created]
    assert [job["queue_position"] for job in polled] == [0, 1, 2, 3, 4]
    # No worker has measured the queue: positions yes, estimates unknown (null), never invented.
    assert all(job["estimated_start_s"] is None and job["estimated_finish_s"] is None for job in polled)
    assert client.get("/v1/queues").get_json()["queues"]["cpu"]["estimated_wait_s"] is None

    record_heartbeat(redis_client, "node-1", ["cpu"], processes=1)
    seed_window(redis_client, "cpu", rtf=0.5, interval_s=2.0)
    audio_s = created[0]["audio_duration_s"]
    polled = [client.get(f"/v1/jobs/{job['id']}").get_json() for job in created]
    for position, job in enumerate(polled):
        assert job["estimated_start_s"] == pytest.approx(position * 0.5 * audio_s, abs=0.11)
        assert job["estimated_finish_s"] == pytest.approx((position + 1) * 0.5 * audio_s, abs=0.11)

    # The first one starts on the one worker process: the others move up behind it.
    repo = JobRepository(make_session_factory(make_engine(settings.database_url)))
    assert repo.transition(created[0]["id"], JobStatus.RUNNING, started_at=utc_now() - timedelta(seconds=0.5))
    running = client.get(f"/v1/jobs/{created[0]['id']}").get_json()
    assert running["queue_position"] is None and running["estimated_start_s"] is None
    assert running["estimated_finish_s"] == pytest.approx(0.5 * audio_s - 0.5, abs=0.3)
    second = client.get(f"/v1/jobs/{created[1]['id']}").get_json()
    assert second["queue_position"] == 0
    assert second["estimated_start_s"] == pytest.approx(running["estimated_finish_s"], abs=0.3)

    queues = client.get("/v1/queues").get_json()["queues"]
    assert set(queues) == {"cpu", "gpu", "sentence"}
    cpu = queues["cpu"]
    assert (cpu["depth"], cpu["running"], cpu["workers"], cpu["processes"]) == (4, 1, 1, 1)
    assert cpu["real_time_factor"] == pytest.approx(0.5) and cpu["samples"] == 5
    assert cpu["drain_jobs_per_s"] == pytest.approx(0.5)
    assert cpu["estimated_wait_s"] == pytest.approx(running["estimated_finish_s"] + 4 * 0.5 * audio_s, abs=0.5)
    assert cpu["max_backlog_jobs"] == settings.queue_max_backlog_jobs
    assert queues["gpu"]["depth"] == 0 and queues["gpu"]["real_time_factor"] is None

    canceled = client.delete(f"/v1/jobs/{created[4]['id']}").get_json()
    assert canceled["status"] == "canceled"
    final = client.get(f"/v1/jobs/{created[4]['id']}").get_json()
    assert final["queue_position"] is None and final["estimated_finish_s"] is None


class _FakeEngine:
    """The plumbing only: the statistics path is under test, not transcription."""

    name = "fake"
    model_name = "fake"

    def transcribe(self, audio, options, progress=None):  # type: ignore[no-untyped-def]
        duration_s = len(audio) / 16000
        return Transcript.from_segments([Segment(start_s=0.0, end_s=duration_s, text="hello")], language="en",
                                        duration_s=duration_s, engine="fake", model="fake")


def test_redis_down_while_recording_statistics_does_not_fail_the_job(tmp_path: Path, own_redis,  # type: ignore[no-untyped-def]
                                                                     clip: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", redis_url=own_redis.url)
    upgrade_to_head(settings.database_url)
    storage = make_storage(settings)
    with clip.open("rb") as audio:
        storage.put_file("audio/stats", audio)
    jobs = JobRepository(make_session_factory(make_engine(settings.database_url)))
    job_id = uuid.uuid4().hex
    jobs.create(job_row(job_id, audio_key="audio/stats"))
    client = redis.Redis.from_url(own_redis.url, socket_connect_timeout=1, socket_timeout=1)
    runtime = WorkerRuntime(settings=settings, jobs=jobs, storage=storage, redis=client,
                            engine=_FakeEngine(), identity="test:1")  # type: ignore[arg-type]
    own_redis.stop()
    try:
        assert run_transcription(runtime, job_id) == JobStatus.SUCCEEDED
    finally:
        own_redis.start()
    assert jobs.get(job_id).status == JobStatus.SUCCEEDED
    assert queue_stats.read_completions(client, "cpu") == []  # the sample was lost, the job was not
