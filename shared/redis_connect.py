"""Every Redis connection the project opens: one place that knows about Redis Sentinel.

Without `redis_sentinels` a client is `redis.Redis.from_url(redis_url)`, as it always was.
With them, a client comes from `redis.sentinel.Sentinel(...).master_for(master)`: its pool asks
the sentinels for the current master on each new connection, so after a failover the next
command (after one ConnectionError on the old connection) reaches the promoted replica. The
database number, password and TLS of the master come from `redis_url`.

Celery's broker takes kombu's `sentinel://` transport (`broker_url` and `master_name` in its
transport options, `celery_factory`), and the `limits` library its `redis+sentinel://` storage.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

import redis
from limits.storage import RedisSentinelStorage, RedisStorage
from redis.sentinel import Sentinel

from shared.config import Settings


def _master_options(settings: Settings) -> dict[str, Any]:
    """db, username, password and TLS of the master, from `redis_url`."""
    parts = urlsplit(settings.effective_redis_url)
    options: dict[str, Any] = {"db": int((parts.path or "/0").strip("/") or 0)}
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    if parts.scheme == "rediss":
        options["ssl"] = True
    return options


def make_redis(settings: Settings, **options: Any) -> redis.Redis:
    """A client of the project's Redis (the current master under Sentinel); `options` are
    redis-py's (socket timeouts, health checks)."""
    if not settings.redis_sentinels:
        return redis.Redis.from_url(settings.effective_redis_url, **options)
    sentinel_options = {key: options[key] for key in ("socket_connect_timeout", "socket_timeout") if key in options}
    sentinel = Sentinel(settings.sentinel_addresses, sentinel_kwargs=sentinel_options, **sentinel_options)
    return sentinel.master_for(settings.redis_sentinel_master, redis_class=redis.Redis,
                               **_master_options(settings), **options)


def celery_broker_url(settings: Settings) -> str:
    """Celery's broker: the Redis URL, or one `sentinel://` URL per sentinel (kombu's form,
    `;`-separated) carrying the master's password and database number."""
    if not settings.redis_sentinels:
        return settings.effective_redis_url
    master = _master_options(settings)
    auth = f":{quote(master['password'], safe='')}@" if "password" in master else ""
    return ";".join(f"sentinel://{auth}{address}/{master['db']}" for address in settings.redis_sentinels)


def celery_sentinel_options(settings: Settings) -> dict[str, Any]:
    """Transport options that kombu's sentinel transport needs (none without Sentinel)."""
    if not settings.redis_sentinels:
        return {}
    return {"master_name": settings.redis_sentinel_master}


def limits_storage_uri(settings: Settings) -> str:
    """The `limits` library's storage URI: the Redis URL, or `redis+sentinel://` naming every
    sentinel and the master."""
    if not settings.redis_sentinels:
        return settings.effective_redis_url
    master = _master_options(settings)
    auth = f":{quote(master['password'], safe='')}@" if "password" in master else ""
    return f"redis+sentinel://{auth}{','.join(settings.redis_sentinels)}/{settings.redis_sentinel_master}"


def make_limits_storage(uri: str, key_prefix: str, **options: Any) -> RedisStorage:
    """The `limits` counters' storage for `uri` (`limits_storage_uri`): a Sentinel one reads
    and writes the master only (a replica may lag behind a counter just charged). The master's
    password stays off the sentinels, as with redis-py's and kombu's clients (limits would send
    it to them too)."""
    if uri.startswith("redis+sentinel://"):
        sentinel_kwargs = {key: value for key, value in options.items() if key.startswith("socket_")}
        return RedisSentinelStorage(uri, use_replicas=False, key_prefix=key_prefix,
                                    sentinel_kwargs={"username": None, "password": None, **sentinel_kwargs},
                                    **options)
    return RedisStorage(uri, key_prefix=key_prefix, **options)
