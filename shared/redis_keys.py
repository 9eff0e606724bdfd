"""Every Redis key and pub/sub channel name the project uses (Celery's own keys aside).

- ``oddasr:job:{job_id}:events``  pub/sub channel; a worker publishes a `JobEvent` when a
  job reaches a final status, so synchronous endpoints wake at once instead of polling.
- ``oddasr:stats:model_loads``  hash ``{"hostname:pid": count}``; each worker process adds
  one each time it loads its engine. Operators and tests read it to prove that models load
  once per process, never per job.
- Celery's queues: the names in `shared.config` (``cpu``, ``gpu``, ``sentence``).
"""

from __future__ import annotations

PREFIX = "oddasr"
MODEL_LOADS_HASH = f"{PREFIX}:stats:model_loads"


def job_events_channel(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:events"
