"""Submit, poll and list latency with a big database: 10,000 jobs, 2,000 of them queued.

What it measures: one client over a keep-alive connection against a real API process
(gunicorn + gevent, as `oddasr run` starts it), p50/p99 in milliseconds of
- submit: POST /v1/jobs with a 1 s WAV (mode file; admission check, storage, insert, send);
- poll: GET /v1/jobs/{id} of random queued jobs (queue position and ETA included: an indexed
  count over up to 2,000 jobs ahead, running jobs, the queue's measurements in Redis);
- list: GET /v1/jobs?status=queued&limit=20, first page and at random offsets.
On SQLite and on PostgreSQL (each bench starts its own servers; no worker is needed: the
queued jobs wait on a queue nobody consumes). Goal: p99 under 50 ms for poll and list.

Run: `.venv/bin/python bench/backlog.py [--db sqlite|postgres|both] [--requests 300]`
(auth off; with `ODDASR_AUTH_MODE=required`, `ODDASR_API_KEY` must hold an admin key).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import wave
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import requests
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from shared import queue_stats  # noqa: E402
from shared.cli import commands  # noqa: E402
from shared.config import QUEUE_CPU, Settings  # noqa: E402
from shared.db.migrate import upgrade_to_head  # noqa: E402
from shared.db.models import Job, JobStatus, utc_now  # noqa: E402
from shared.db.session import make_engine  # noqa: E402
from shared.worker_presence import record_heartbeat  # noqa: E402
from tests.support.servers import free_port, run_postgres, run_redis, stop_process  # noqa: E402

TOTAL_JOBS = 10_000
QUEUED_JOBS = 2_000
WARM_UP_REQUESTS = 20
#: Migration 0007's indexes; --without-queue-indexes drops them to show what they buy.
QUEUE_INDEXES = ("ix_jobs_queue_status_created_at", "ix_jobs_status_created_at")


def tiny_wav() -> bytes:
    """One second of a quiet 440 Hz tone, 16 kHz mono 16-bit."""
    samples = (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 3000).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def fill_database(database_url: str, drop_queue_indexes: bool, total_jobs: int, queued_jobs: int) -> list[str]:
    """10,000 jobs in one bulk insert: the oldest 8,000 finished, the newest 2,000 queued on
    the cpu queue. Returns the queued ids."""
    upgrade_to_head(database_url)
    if drop_queue_indexes:  # the "before" figures: the schema as it was without migration 0007
        with make_engine(database_url).begin() as connection:
            for index in QUEUE_INDEXES:
                connection.exec_driver_sql(f"DROP INDEX {index}")
    now = utc_now()
    rng = random.Random(7)
    rows, queued = [], []
    for index in range(total_jobs):
        created = now - timedelta(seconds=(total_jobs - index) * 5)
        job_id = uuid.uuid4().hex
        is_queued = index >= total_jobs - queued_jobs
        status = JobStatus.QUEUED if is_queued else rng.choice([JobStatus.SUCCEEDED] * 9 + [JobStatus.FAILED])
        rows.append({"id": job_id, "status": status.value, "mode": "file", "queue": QUEUE_CPU, "options": {},
                     "audio_key": f"audio/{job_id}", "audio_filename": "a.wav", "audio_size_bytes": 32000,
                     "audio_duration_s": rng.uniform(5, 120), "progress": 0.0 if is_queued else 1.0,
                     "attempts": 0 if is_queued else 1, "created_at": created, "updated_at": created,
                     "started_at": None if is_queued else created + timedelta(seconds=2),
                     "finished_at": None if is_queued else created + timedelta(seconds=4)})
        if is_queued:
            queued.append(job_id)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        for start in range(0, len(rows), 10_000):
            connection.execute(insert(Job), rows[start:start + 10_000])
    engine.dispose()
    return queued


def keep_a_worker_alive(client: redis.Redis, stop: threading.Event) -> None:
    """A heartbeat of a worker node with 2 processes on cpu, so polls compute full estimates."""
    while not stop.is_set():
        record_heartbeat(client, "bench-node", [QUEUE_CPU], processes=2)
        stop.wait(3.0)


def percentiles_ms(action: Callable[[], None], count: int) -> tuple[float, float]:
    for _ in range(WARM_UP_REQUESTS):
        action()
    latencies_ms = []
    for _ in range(count):
        started_s = time.perf_counter()
        action()
        latencies_ms.append((time.perf_counter() - started_s) * 1000)
    return statistics.median(latencies_ms), float(np.percentile(latencies_ms, 99))


def run_one(kind: str, database_url: str, redis_url: str, tmp: Path, requests_per_op: int,
            drop_queue_indexes: bool = False, total_jobs: int = TOTAL_JOBS,
            queued_jobs: int = QUEUED_JOBS) -> dict[str, tuple]:
    tmp.mkdir(parents=True, exist_ok=True)
    queued_ids = fill_database(database_url, drop_queue_indexes, total_jobs, queued_jobs)
    client = redis.Redis.from_url(redis_url)
    for index in range(queue_stats.COMPLETIONS_KEPT):
        queue_stats.record_completion(client, QUEUE_CPU, queue_stats.Completion(30.0, 3.0, time.time() - 100 + index))
    stop = threading.Event()
    threading.Thread(target=keep_a_worker_alive, args=(client, stop), daemon=True).start()
    settings = Settings(data_dir=tmp / "data", database_url=database_url, redis_url=redis_url, port=free_port(),
                        disable_stream=True, stream_workers=0, log_level="WARNING", enable_flower=False,
                        # Admission is checked on every submit, but must not refuse a big --queued.
                        queue_max_backlog_jobs=max(2 * queued_jobs, 10_000))
    env = {**os.environ, **settings.as_child_environment()}
    log = (tmp / f"api-{kind}.log").open("ab")
    api = subprocess.Popen(commands.api_argv(settings, "all"), env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://{settings.host}:{settings.port}"
    session = requests.Session()
    if settings.api_key:
        session.headers["Authorization"] = f"Bearer {settings.api_key}"
    try:
        deadline_s = time.monotonic() + 60
        while True:
            try:
                if session.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline_s or api.poll() is not None:
                raise RuntimeError(f"the API did not start; see {tmp / f'api-{kind}.log'}")
            time.sleep(0.2)
        audio = tiny_wav()
        rng = random.Random(11)

        def ok(response: requests.Response, status: int = 200) -> None:
            if response.status_code != status:
                raise RuntimeError(f"{response.request.method} {response.url}: {response.status_code} {response.text}")

        def submit() -> None:
            ok(session.post(f"{base}/v1/jobs", files={"audio": ("a.wav", audio)}, data={"mode": "file"},
                            timeout=10), 202)

        def poll() -> None:
            response = session.get(f"{base}/v1/jobs/{rng.choice(queued_ids)}", timeout=10)
            ok(response)
            if response.json().get("queue_position") is None:
                raise RuntimeError("a queued job without its position")

        def list_first() -> None:
            ok(session.get(f"{base}/v1/jobs", params={"status": "queued", "limit": 20}, timeout=10))

        def list_offset() -> None:
            offset = rng.randrange(0, queued_jobs - 20)
            ok(session.get(f"{base}/v1/jobs", params={"status": "queued", "limit": 20, "offset": offset},
                           timeout=10))

        results = {name: percentiles_ms(action, requests_per_op)
                   for name, action in (("poll (queued job, position + ETA)", poll),
                                        ("list status=queued limit=20", list_first),
                                        ("list status=queued limit=20 offset=random", list_offset),
                                        ("submit (1 s WAV, mode file)", submit))}
        sample = session.get(f"{base}/v1/jobs/{queued_ids[-1]}", timeout=10).json()
        print(f"  [{kind}] last queued job: position {sample['queue_position']},"
              f" estimated start {sample['estimated_start_s']} s")
        return results
    finally:
        stop.set()
        stop_process(api)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per operation")
    parser.add_argument("--jobs", type=int, default=TOTAL_JOBS, help="jobs in the database")
    parser.add_argument("--queued", type=int, default=QUEUED_JOBS, help="of which queued")
    parser.add_argument("--without-queue-indexes", action="store_true",
                        help="drop migration 0007's indexes first (the before figures)")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    print(f"backlog bench: {args.jobs} jobs in the database, {args.queued} queued; one client, keep-alive,"
          f" {args.requests} timed requests per operation after {WARM_UP_REQUESTS} warm-up ones; goal p99 < 50 ms"
          f" for poll and list{'; WITHOUT the queue indexes of migration 0007' if args.without_queue_indexes else ''}")
    with tempfile.TemporaryDirectory(prefix="oddasr-backlog-") as tmp_dir:
        tmp = Path(tmp_dir)
        redis_server = run_redis(tmp / "redis")
        try:
            for kind in kinds:
                redis.Redis.from_url(redis_server.url).flushdb()
                if kind == "sqlite":
                    results = run_one(kind, f"sqlite:///{tmp / 'jobs.db'}", redis_server.url, tmp / kind,
                                      args.requests, args.without_queue_indexes, args.jobs, args.queued)
                else:
                    postgres = run_postgres(tmp / "postgres")
                    try:
                        results = run_one(kind, postgres.url, redis_server.url, tmp / kind, args.requests,
                                          args.without_queue_indexes, args.jobs, args.queued)
                    finally:
                        postgres.close()
                print(f"{kind:10s} {'operation':45s} | p50 ms | p99 ms")
                for name, (p50, p99) in results.items():
                    print(f"{kind:10s} {name:45s} | {p50:6.1f} | {p99:6.1f}")
        finally:
            redis_server.close()


if __name__ == "__main__":
    main()
