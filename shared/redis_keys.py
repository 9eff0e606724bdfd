"""Every Redis key and pub/sub channel name the project uses (Celery's own keys aside).

- ``oddasr:job:{job_id}:events``  pub/sub channel; a worker publishes a `JobEvent` when a
  job reaches a final status, so synchronous endpoints wake at once instead of polling.
- ``oddasr:stats:model_loads``  hash ``{"hostname:pid": count}``; each worker process adds
  one each time it loads its engine. Operators and tests read it to prove that models load
  once per process, never per job.
- ``oddasr:queue:{queue}:workers``  sorted set ``{worker node name: unix time of its last
  heartbeat}``; each worker process group refreshes it every few seconds for the queues it
  consumes. The API routes by it (is a GPU worker alive?) and /readyz reports it.
- Celery's queues: the names in `shared.config` (``cpu``, ``gpu``, ``sentence``).
"""

from __future__ import annotations

PREFIX = "oddasr"
MODEL_LOADS_HASH = f"{PREFIX}:stats:model_loads"


#: A worker whose heartbeat is older than this is taken as gone.
WORKER_HEARTBEAT_TTL_S = 15.0
WORKER_HEARTBEAT_INTERVAL_S = 5.0


def queue_workers_key(queue: str) -> str:
    return f"{PREFIX}:queue:{queue}:workers"


def job_events_channel(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:events"
