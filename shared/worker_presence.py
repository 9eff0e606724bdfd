"""Which queues have a live worker, from heartbeats workers write to Redis.

One ZSET per queue (`redis_keys.queue_workers_key`) maps worker names to the time of their
last heartbeat. Reading it is one Redis call, cheap enough for every submission, unlike a
Celery broadcast (`inspect`) that waits a full timeout for replies. Heartbeats are stamped and
judged with Redis' clock (`shared.redis_clock`): the worker and the API that reads its heartbeat
run on hosts whose clocks may differ.
"""

from __future__ import annotations

import redis

from shared import redis_keys
from shared.redis_clock import redis_now_s


def record_heartbeat(
    client: redis.Redis, worker: str, queues: list[str], now_s: float | None = None, *, loaded: bool = True,
    processes: int | None = None,
) -> None:
    """Show `worker` alive for `queues`: as serving them once its models are `loaded`, before
    that as loading (routing and readiness count only workers that can start a job now).
    `processes` (its concurrency) lets queue estimates count parallel jobs; None leaves it out."""
    now_s = redis_now_s(client) if now_s is None else now_s
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            if processes is not None:
                processes_key = redis_keys.queue_processes_key(queue)
                pipe.hset(processes_key, worker, max(1, processes))
                pipe.expire(processes_key, int(redis_keys.WORKER_HEARTBEAT_TTL_S * 4))
            key = redis_keys.queue_workers_key(queue) if loaded else redis_keys.queue_loading_key(queue)
            if loaded:
                pipe.zrem(redis_keys.queue_loading_key(queue), worker)
            pipe.zadd(key, {worker: now_s})
            pipe.zremrangebyscore(key, 0, now_s - redis_keys.WORKER_HEARTBEAT_TTL_S * 4)
            pipe.expire(key, int(redis_keys.WORKER_HEARTBEAT_TTL_S * 4))
        pipe.execute()


def forget_worker(client: redis.Redis, worker: str, queues: list[str]) -> None:
    """A worker that stops cleanly leaves at once instead of after the heartbeat TTL."""
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.zrem(redis_keys.queue_workers_key(queue), worker)
            pipe.zrem(redis_keys.queue_loading_key(queue), worker)
            pipe.hdel(redis_keys.queue_processes_key(queue), worker)
        pipe.execute()


def _fresh_members(client: redis.Redis, key: str, now_s: float | None) -> list[str]:
    now_s = redis_now_s(client) if now_s is None else now_s
    members = client.zrangebyscore(key, now_s - redis_keys.WORKER_HEARTBEAT_TTL_S, "+inf")
    return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)


def live_workers(client: redis.Redis, queue: str, now_s: float | None = None) -> list[str]:
    """Workers that serve `queue` now: alive, their models loaded."""
    return _fresh_members(client, redis_keys.queue_workers_key(queue), now_s)


def loading_workers(client: redis.Redis, queue: str, now_s: float | None = None) -> list[str]:
    """Workers of `queue` that are alive but still loading their models."""
    return _fresh_members(client, redis_keys.queue_loading_key(queue), now_s)


def live_processes(client: redis.Redis, queue: str, now_s: float | None = None) -> int:
    """Worker processes that serve `queue` now: the sum of the live nodes' concurrency (a
    node that never said, an older worker, counts as one). Two Redis calls."""
    workers = live_workers(client, queue, now_s)
    if not workers:
        return 0
    counts = client.hmget(redis_keys.queue_processes_key(queue), workers)
    return sum(process_count(count) for count in counts)


def process_count(raw: bytes | str | None) -> int:
    """A node's concurrency as its heartbeat wrote it; a node that never did (older code) is 1."""
    try:
        return max(1, int(raw)) if raw is not None else 1
    except ValueError:
        return 1
