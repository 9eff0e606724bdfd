"""Container health check of a stream worker: exit 0 when a stream worker process of this
host holds a slot with a fresh heartbeat (its model is loaded and it answers Redis)."""

from __future__ import annotations

import json
import socket
import sys

from shared import redis_keys
from shared.config import get_settings
from shared.redis_clock import redis_now_s
from shared.redis_connect import make_redis
from shared.stream_slots import SLOT_HEARTBEAT_TTL_S


def main() -> int:
    client = make_redis(get_settings(), socket_connect_timeout=3, socket_timeout=3)
    host = socket.gethostname()
    now_s = redis_now_s(client)  # heartbeats are stamped with Redis' clock
    for raw in client.hvals(redis_keys.STREAM_SLOTS_HASH):
        slot = json.loads(raw)
        if slot.get("host") == host and now_s - float(slot.get("heartbeat_s", 0)) <= SLOT_HEARTBEAT_TTL_S:
            return 0
    sys.stderr.write(f"no live stream worker slot of host {host}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
