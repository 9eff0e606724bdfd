"""What a running job is waiting for, said in words while it waits.

A job can sit at 0 % for a reason the percentage cannot tell: the first diarized job of a
Whisper worker loads the speaker model (5-30 s). The worker says so in a short-lived Redis key;
`GET /v1/jobs/{id}` shows it as `waiting_for` while the job runs, and null otherwise.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import redis

from shared import redis_keys

logger = logging.getLogger(__name__)

#: The words outlive a worker killed mid-wait by at most this long.
WAITING_TTL_S = 300

LOADING_SPEAKER_MODEL = ("loading the speaker model (the first job with speaker labels on this worker; "
                         "it takes 5-30 s once)")


@contextlib.contextmanager
def job_waiting_for(client: redis.Redis, job_id: str, what: str) -> Iterator[None]:
    """Say `what` for `job_id` while the block runs. Redis being away costs the words only."""
    key = redis_keys.job_waiting_key(job_id)
    with contextlib.suppress(redis.RedisError):
        client.set(key, what, ex=WAITING_TTL_S)
    try:
        yield
    finally:
        with contextlib.suppress(redis.RedisError):
            client.delete(key)


def read_job_waiting_for(client: redis.Redis, job_id: str) -> str | None:
    try:
        raw = client.get(redis_keys.job_waiting_key(job_id))
    except redis.RedisError:
        return None
    return raw.decode("utf-8") if isinstance(raw, bytes) else raw
