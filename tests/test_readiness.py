"""/readyz says ready only once a worker of each configured queue has loaded its models, and
names the queues still loading until then (workers announce themselves only after loading)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis
import requests

from shared import redis_keys
from shared.cli import commands
from shared.db.migrate import upgrade_to_head
from tests.support.stack import Stack, stack_settings

pytestmark = pytest.mark.integration

#: A Redis database of its own, so other modules' worker heartbeats do not count here.
REDIS_DB = 9


def test_ready_only_after_the_workers_loaded_their_models(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    url = redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    settings = stack_settings(tmp_path, url, sentence_worker_concurrency=0)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.database_url)
    (tmp_path / "logs").mkdir()
    stack = Stack(settings=settings, base_url=f"http://{settings.host}:{settings.port}", log_dir=tmp_path / "logs",
                  env={**os.environ, **settings.as_child_environment()})
    try:
        stack.spawn("api", commands.api_argv(settings))
        deadline_s = time.monotonic() + 60
        while True:
            try:
                body = requests.get(stack.url("/readyz"), timeout=5).json()
                break
            except requests.RequestException:
                assert time.monotonic() < deadline_s, stack.log_tail("api")
                time.sleep(0.2)
        assert body["ready"] is False and "cpu" in body["waiting_for"], body
        stack.start_worker("file", ["cpu"], 1)
        saw_loading = False
        deadline_s = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline_s, (body, stack.log_tail("worker-file"))
            response = requests.get(stack.url("/readyz"), timeout=5)
            body = response.json()
            if body["queues"]["cpu"]["workers"]:
                # Announced: its model is loaded (each process records its load), and ready.
                assert client.hlen(redis_keys.MODEL_LOADS_HASH) >= 1, body
                assert response.status_code == 200 and body["ready"] is True, body
                assert body["waiting_for"] == {}
                break
            assert response.status_code == 503 and body["ready"] is False, body
            if body["queues"]["cpu"]["loading"]:
                saw_loading = True
                assert "loading" in body["waiting_for"]["cpu"], body
            time.sleep(0.05)
        assert saw_loading, "the worker was never reported as loading its models"
    finally:
        stack.stop_all()
        client.flushdb()
