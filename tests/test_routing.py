"""Routing by worker presence: heartbeats in a real Redis decide where file jobs go."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from api.routing import choose_queue
from shared.config import Settings
from shared.worker_presence import forget_worker, live_workers, record_heartbeat


def client_for(redis_server) -> redis.Redis:  # type: ignore[no-untyped-def]
    client = redis.Redis.from_url(redis_server.url)
    for key in client.scan_iter("oddasr:queue:*"):
        client.delete(key)
    return client


def test_sentence_jobs_always_take_their_lane(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    client = client_for(redis_server)
    for enable_gpu in (False, True):
        assert choose_queue(Settings(data_dir=tmp_path, enable_gpu=enable_gpu), "sentence", client) == "sentence"


def test_cpu_deployments_route_file_jobs_to_cpu(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    client = client_for(redis_server)
    record_heartbeat(client, "gpu@box", ["gpu"])
    assert choose_queue(Settings(data_dir=tmp_path), "file", client) == "cpu"


def test_gpu_when_a_gpu_worker_is_alive_else_fallback(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    client = client_for(redis_server)
    settings = Settings(data_dir=tmp_path, enable_gpu=True)
    assert choose_queue(settings, "file", client) == "cpu"  # no GPU worker: fall back
    record_heartbeat(client, "gpu@box", ["gpu"])
    assert choose_queue(settings, "file", client) == "gpu"
    forget_worker(client, "gpu@box", ["gpu"])
    assert choose_queue(settings, "file", client) == "cpu"
    stale_s = time.time() - 60
    record_heartbeat(client, "gpu@old", ["gpu"], now_s=stale_s)
    assert live_workers(client, "gpu") == []
    assert choose_queue(settings, "file", client) == "cpu"


def test_without_fallback_file_jobs_wait_for_a_gpu(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    client = client_for(redis_server)
    settings = Settings(data_dir=tmp_path, enable_gpu=True, gpu_fallback_to_cpu=False)
    assert choose_queue(settings, "file", client) == "gpu"
