"""Which other machines share this deployment, to warn that local storage cannot work there.

The `local` storage backend is a directory on one machine: an upload the API stores there is
out of reach of a worker on another host. Nothing is configured about hosts, but Redis already
knows them: worker nodes are named `name@host` in their presence heartbeats
(`shared.worker_presence`), stream slots carry their `host`, and API processes add their host
to `redis_keys.API_HOSTS_ZSET`. A process with `storage_backend=local` compares those with its
own host name and warns (it does not refuse: one machine with several host names, containers
sharing a volume, is a valid setup this cannot tell apart).
"""

from __future__ import annotations

import json
import socket
import time

import redis

from shared import redis_keys
from shared.config import QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE, Settings
from shared.redis_clock import redis_now_s
from shared.stream_slots import SLOT_HEARTBEAT_TTL_S

#: An API host is counted this long after it last said so (it says so at start and on every
#: /readyz, which load balancers poll every few seconds).
API_HOST_FRESH_S = 3600.0
#: The queues whose workers read uploads from storage (the webhooks node does not).
STORAGE_QUEUES = (QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE)


def own_host() -> str:
    return socket.gethostname()


def record_api_host(client: redis.Redis, host: str | None = None) -> None:
    """Say that an API process runs on `host` (this machine by default), on Redis' clock."""
    now_s = redis_now_s(client)
    with client.pipeline(transaction=False) as pipe:
        pipe.zadd(redis_keys.API_HOSTS_ZSET, {host or own_host(): now_s})
        pipe.zremrangebyscore(redis_keys.API_HOSTS_ZSET, 0, now_s - API_HOST_FRESH_S)
        pipe.expire(redis_keys.API_HOSTS_ZSET, int(API_HOST_FRESH_S))
        pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def deployment_hosts(client: redis.Redis) -> dict[str, set[str]]:
    """Host name -> the roles seen alive on it (`api`, `worker`, `stream`), from Redis."""
    now_s = redis_now_s(client)
    hosts: dict[str, set[str]] = {}
    for member in client.zrangebyscore(redis_keys.API_HOSTS_ZSET, now_s - API_HOST_FRESH_S, "+inf"):
        hosts.setdefault(_text(member), set()).add("api")
    for queue in STORAGE_QUEUES:
        for key in (redis_keys.queue_workers_key(queue), redis_keys.queue_loading_key(queue)):
            for member in client.zrangebyscore(key, now_s - redis_keys.WORKER_HEARTBEAT_TTL_S, "+inf"):
                node = _text(member)
                if "@" in node:  # Celery's `name@host`
                    hosts.setdefault(node.split("@", 1)[1], set()).add("worker")
    for raw in client.hvals(redis_keys.STREAM_SLOTS_HASH):
        slot = json.loads(raw)
        if slot.get("host") and now_s - float(slot.get("heartbeat_s", 0)) <= SLOT_HEARTBEAT_TTL_S:
            hosts.setdefault(str(slot["host"]), set()).add("stream")
    return hosts


def other_hosts(client: redis.Redis, host: str | None = None) -> dict[str, list[str]]:
    """The hosts other than `host` (this one by default) seen alive, with their roles."""
    host = host or own_host()
    return {name: sorted(roles) for name, roles in sorted(deployment_hosts(client).items()) if name != host}


def local_storage_warning(settings: Settings, others: dict[str, list[str]], *, with_names: bool = True) -> str:
    """The warning for `storage_backend=local` with processes on `others`; '' when none applies."""
    if settings.storage_backend != "local" or not others:
        return ""
    where = ": " + ", ".join(f"{name} ({'/'.join(roles)})" for name, roles in others.items()) if with_names else ""
    return (f"storage_backend=local keeps files on this machine ({own_host() if with_names else 'one host'}), "
            f"but processes of this deployment run on {len(others)} other host(s){where}; they cannot read "
            "those files: use storage_backend=s3")


class LocalStorageWatch:
    """Logs the local-storage warning once per newly seen host, from a periodic loop (a
    heartbeat): at start, or on first sight of a process on another host."""

    #: Looks at most this often, whatever the loop's pace.
    interval_s = 5.0

    def __init__(self, settings: Settings, role: str) -> None:
        self.settings = settings
        self.role = role
        self.warned_hosts: set[str] = set()
        self._next_check_s = 0.0

    def check(self, client: redis.Redis, logger: object) -> str:
        if self.settings.storage_backend != "local" or time.monotonic() < self._next_check_s:
            return ""
        self._next_check_s = time.monotonic() + self.interval_s
        others = other_hosts(client)
        warning = local_storage_warning(self.settings, others)
        if warning and not set(others) <= self.warned_hosts:
            self.warned_hosts |= set(others)
            logger.warning("%s: %s", self.role, warning)  # type: ignore[attr-defined]
        return warning
