"""Every Redis key and pub/sub channel name the project uses (Celery's own keys aside).

- ``oddasr:job:{job_id}:events``  pub/sub channel; a worker publishes a `JobEvent` when a
  job reaches a final status, so synchronous endpoints wake at once instead of polling.
- ``oddasr:stats:model_loads``  hash ``{"hostname:pid": count}``; each worker process adds
  one each time it loads its engine. Operators and tests read it to prove that models load
  once per process, never per job.
- ``oddasr:queue:{queue}:workers``  sorted set ``{worker node name: unix time of its last
  heartbeat}``; each worker process group refreshes it every few seconds for the queues it
  consumes. The API routes by it (is a GPU worker alive?) and /readyz reports it. A worker
  enters it only once its models are loaded.
- ``oddasr:queue:{queue}:loading``  sorted set, the same shape, for workers that started but
  are still loading their models; /readyz names them (the queue is not served yet).
- ``oddasr:queue:{queue}:processes``  hash ``{worker node name: worker processes}``, written
  with the heartbeat: how many jobs of the queue the node runs at once (its Celery
  concurrency; 1 for a solo pool). Queue estimates count a live node without an entry as 1.
- ``oddasr:queue:{queue}:completions``  list of JSON ``{"audio_s", "processing_s",
  "finished_at_s"}``, newest first, capped (LPUSH + LTRIM) at the last 50 succeeded jobs of
  the queue; `shared.queue_stats` derives the queue's real-time factor and drain rate from
  it for queue positions, estimates, /v1/queues and backlog admission.
- ``oddasr:stream:slots``  hash ``{stream worker id: slot JSON}``; one entry per stream worker
  process (its state ``idle`` / ``claimed``, the session it serves, its fencing token and
  the unix time of its last heartbeat). Claimed and released only by the Lua scripts in
  `shared.stream_slots`, so a claim is atomic across any number of API processes.
- ``oddasr:stream:fence``  counter; each claim takes the next value as its fencing token, so
  a worker never acts on a request meant for an earlier claim of its slot.
- ``oddasr:stream:worker:{worker_id}:inbox``  list; the API pushes the session request of a
  claim here and the claimed worker pops it (a list, not pub/sub: nothing is lost while the
  worker is between two reads).
- ``oddasr:stream:session:{session_id}:in``  pub/sub channel API -> worker: the session's
  audio frames and control messages, each with a sequence number.
- ``oddasr:stream:session:{session_id}:out``  pub/sub channel worker -> API: ready, partial
  and final results, heartbeats, the end of the session; each with a sequence number.
- ``oddasr:stream:session:{session_id}:resume``  JSON ``{"last_final_sent": index}``, set by
  the API whose client dropped, expiring after the resume window: what a reconnecting client
  that does not say which finals it has was last sent.
- ``oddasr:limits/...``  the per-key rate-limit counters (requests per minute, audio seconds
  per day), written by the `limits` library's sliding-window scripts under this prefix.
- ``oddasr:job:{job_id}:audio-charge-corrected``  string, the seconds a worker charged a
  job's key beyond its admission charge (its decoded audio was longer than measured), set
  once (SET NX, two days): a redelivered job never pays the difference twice.
- ``oddasr:key:{key_id}:in-flight-lock``  a short lock (redis-py's `Lock`) an API process
  holds while it counts a key's jobs in flight and inserts a new one, so two processes
  cannot both admit the last free place.
- ``oddasr:job:{session_id}:reprocess-claim``  a lock (redis-py's `Lock`: SET NX PX with a
  token) on a live session still owed its reprocessing: the reconciler that sends the copy
  task takes it, the task renews it while it copies and deletes it when done; a worker that
  dies holding it lets it expire (`reprocess_claim_lease_s`) and another node takes it.
- ``oddasr:hosts:api``  sorted set ``{API host name: unix time (Redis' clock) it last said so}``;
  each API process adds its host at start and on every /readyz, so a worker with local storage
  can tell that an API runs on another machine (`shared.host_spread`).
- Celery's queues: the names in `shared.config` (``cpu``, ``gpu``, ``sentence``); kombu keeps
  each as lists ``{queue}`` and, for messages sent with a priority, ``{queue}\x06\x16{3,6,9}``.
  The API's /metrics reads their lengths (`celery_queue_lists`).
"""

from __future__ import annotations

PREFIX = "oddasr"
MODEL_LOADS_HASH = f"{PREFIX}:stats:model_loads"


#: A worker whose heartbeat is older than this is taken as gone.
WORKER_HEARTBEAT_TTL_S = 15.0
WORKER_HEARTBEAT_INTERVAL_S = 5.0


def queue_workers_key(queue: str) -> str:
    return f"{PREFIX}:queue:{queue}:workers"


def queue_loading_key(queue: str) -> str:
    return f"{PREFIX}:queue:{queue}:loading"


def queue_processes_key(queue: str) -> str:
    return f"{PREFIX}:queue:{queue}:processes"


def queue_completions_key(queue: str) -> str:
    return f"{PREFIX}:queue:{queue}:completions"


def job_events_channel(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:events"


API_HOSTS_ZSET = f"{PREFIX}:hosts:api"
STREAM_SLOTS_HASH = f"{PREFIX}:stream:slots"
STREAM_FENCE_COUNTER = f"{PREFIX}:stream:fence"


def stream_worker_inbox(worker_id: str) -> str:
    return f"{PREFIX}:stream:worker:{worker_id}:inbox"


def stream_session_in_channel(session_id: str) -> str:
    return f"{PREFIX}:stream:session:{session_id}:in"


def stream_session_out_channel(session_id: str) -> str:
    return f"{PREFIX}:stream:session:{session_id}:out"


#: Prefix of the `limits` library's counters (it appends its own key layout).
RATE_LIMIT_PREFIX = f"{PREFIX}:limits"


def job_waiting_key(job_id: str) -> str:
    """What a running job is waiting for, in words (`shared/job_waiting.py`), while it waits."""
    return f"{PREFIX}:job:{job_id}:waiting-for"


def audio_charge_corrected_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:audio-charge-corrected"


def in_flight_lock_key(key_id: str) -> str:
    return f"{PREFIX}:key:{key_id}:in-flight-lock"


def reprocess_claim_key(session_id: str) -> str:
    return f"{PREFIX}:job:{session_id}:reprocess-claim"


def stream_resume_key(session_id: str) -> str:
    return f"{PREFIX}:stream:session:{session_id}:resume"


#: kombu's Redis transport: the separator and priority steps of its per-priority lists.
_KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
_KOMBU_PRIORITY_STEPS = (3, 6, 9)


def celery_queue_lists(queue: str) -> list[str]:
    """The Redis lists that hold a Celery queue's waiting messages (priority 0 first)."""
    return [queue, *(f"{queue}{_KOMBU_PRIORITY_SEPARATOR}{step}" for step in _KOMBU_PRIORITY_STEPS)]
