"""Redis' clock: the one clock every host that shares a Redis agrees on.

Liveness written by one host and read by another (stream slot heartbeats, worker presence,
session request deadlines) is stamped and judged by the Redis server's `TIME`, never by the
caller's `time.time()`: two hosts' clocks may differ by minutes (a VM restored from a
snapshot, NTP not yet synced), and a heartbeat stamped by a clock two minutes behind would
look dead to every reader. Inside a Lua script the same clock is `redis.call('TIME')`
(`LUA_NOW_S`).
"""

from __future__ import annotations

import redis

#: A Lua expression that evaluates to the server's time in seconds, as a float.
LUA_NOW_S = "(function() local t = redis.call('TIME'); return tonumber(t[1]) + tonumber(t[2]) / 1e6 end)()"


def redis_now_s(client: redis.Redis) -> float:
    """The Redis server's time in unix seconds (one round trip)."""
    seconds, microseconds = client.time()
    return float(seconds) + float(microseconds) / 1e6
