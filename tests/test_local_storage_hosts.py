"""Local storage on a deployment that spans hosts is warned about (issue 20).

The `local` backend is a directory of one machine. A process with it that sees, through
Redis, an API, a worker or a stream worker on another host logs a warning, and /readyz lists
it under `warnings`. The other host is a real worker process in its own UTS namespace (its own
host name, as the cluster bed gives each host): root only.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import redis
import requests

from shared import redis_keys
from shared.cli import commands
from shared.config import Settings
from shared.host_spread import local_storage_warning, other_hosts, record_api_host
from shared.redis_clock import redis_now_s
from shared.worker_presence import record_heartbeat
from tests.support.stack import running_stack
from tests.support.waiting import wait_until

OTHER_HOST = "oddasr-other-host"


@pytest.fixture
def client(own_redis) -> redis.Redis:  # type: ignore[no-untyped-def]
    c = redis.Redis.from_url(own_redis.url)
    c.flushdb()
    yield c
    c.close()


def test_one_host_gives_no_warning(client: redis.Redis) -> None:
    me = socket.gethostname()
    record_api_host(client, me)
    record_heartbeat(client, f"file@{me}", ["cpu"])
    assert other_hosts(client) == {}
    assert local_storage_warning(Settings(storage_backend="local"), other_hosts(client)) == ""


def test_other_hosts_are_named_with_their_roles(client: redis.Redis) -> None:
    record_api_host(client, "api-a")
    record_heartbeat(client, "file@work-b", ["cpu"])
    record_heartbeat(client, "sentence@work-b", ["sentence"], loaded=False)
    now_s = redis_now_s(client)
    client.hset(redis_keys.STREAM_SLOTS_HASH, "s1", json.dumps({"host": "stream-c", "heartbeat_s": now_s}))
    client.hset(redis_keys.STREAM_SLOTS_HASH, "s2", json.dumps({"host": "gone-d", "heartbeat_s": now_s - 600}))
    record_heartbeat(client, "old@gone-e", ["cpu"], now_s=now_s - 600)
    others = other_hosts(client)
    assert others == {"api-a": ["api"], "stream-c": ["stream"], "work-b": ["worker"]}
    warning = local_storage_warning(Settings(storage_backend="local"), others)
    assert "storage_backend=local" in warning and "work-b (worker)" in warning and "3 other host(s)" in warning
    assert "work-b" not in local_storage_warning(Settings(storage_backend="local"), others, with_names=False)
    assert local_storage_warning(Settings(storage_backend="s3"), others) == ""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="a second host name needs root (unshare --uts)")
def test_a_worker_on_another_host_is_warned_about_by_both_sides(tmp_path: Path, own_redis) -> None:  # type: ignore[no-untyped-def]
    redis.Redis.from_url(own_redis.url).flushdb()
    with running_stack(tmp_path, own_redis.url, file_concurrency=1, sentence_concurrency=0) as stack:
        ready = requests.get(stack.url("/readyz"), timeout=10).json()
        assert ready["warnings"] == {}, "one host: nothing to warn about"
        argv = commands.worker_argv(stack.settings, [stack.settings.file_queue], 1, "prefork", "elsewhere", None)
        stack.spawn("worker-elsewhere", ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', OTHER_HOST,
                                         *argv])

        def storage_warning() -> str:
            return requests.get(stack.url("/readyz"), timeout=10).json()["warnings"].get("storage", "")

        warning = wait_until(storage_warning, "the API's /readyz to warn about local storage", timeout_s=120)
        assert f"{OTHER_HOST} (worker)" in warning
        me = socket.gethostname()
        log = wait_until(lambda: "storage_backend=local" in stack.log_tail("worker-elsewhere", 400)
                         and stack.log_tail("worker-elsewhere", 400), "the other host's worker to warn", timeout_s=120)
        assert f"{me} (api/worker)" in log, log
        log = wait_until(lambda: "storage_backend=local" in stack.log_tail("worker-file", 400)
                         and stack.log_tail("worker-file", 400), "this host's worker to warn", timeout_s=60)
        assert f"{OTHER_HOST} (worker)" in log and f"{me} (" not in log.split("run on")[-1], log
