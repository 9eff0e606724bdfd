"""A key's daily audio seconds, charged from outside the API: what admission could not know.

The API charges a job the length it measured at admission (`api/key_limits.py`). Workers
learn more: the decoded length of a file job (a container may understate its length in ways
no probe sees, and a job stopped at its mode's limit has decoded more than it was admitted
with), and the length of a live session's recording when its reprocessing job is made. They
charge here, into the same counters: the `limits` library's sliding-window counters under
`redis_keys.RATE_LIMIT_PREFIX`, keyed by the key id and its daily limit, exactly as the API's.

A counter has no refund, so a correction only ever adds; and a Redis that cannot answer lets
the work through, as every limit of the project does (the queue reports the outage itself).
"""

from __future__ import annotations

import logging
import math

import redis
from limits import RateLimitItemPerDay
from limits.strategies import SlidingWindowCounterRateLimiter
from sqlalchemy.orm import Session, sessionmaker

from shared import redis_keys
from shared.config import Settings
from shared.db.models import ApiKey
from shared.redis_connect import make_limits_storage

logger = logging.getLogger(__name__)

#: How long a job's one-time correction is remembered (a redelivered task must not pay twice);
#: past a day the sliding window has forgotten the charge anyway.
CORRECTION_MARK_TTL_S = 2 * 24 * 3600


def charged_s(duration_s: float | None) -> int:
    """What a job of this length costs, as the API charges it: whole seconds, at least 1."""
    return max(1, math.ceil(duration_s or 0.0))


def daily_limit_s(session_factory: sessionmaker[Session], settings: Settings, key_id: str | None) -> int:
    """The key's own audio seconds per day, else the default (0: no limit, or no key)."""
    if not key_id:
        return 0
    with session_factory() as session:
        row = session.get(ApiKey, key_id)
    own = row.audio_seconds_per_day if row is not None else None
    return settings.default_audio_seconds_per_day if own is None else int(own)


class AudioAllowance:
    """Charges against keys' daily audio allowance, from a worker."""

    def __init__(self, redis_url: str) -> None:
        self._storage = make_limits_storage(redis_url, redis_keys.RATE_LIMIT_PREFIX,
                                            socket_connect_timeout=3, socket_timeout=5)
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)

    def has_room(self, key_id: str, limit_s: int, seconds: int) -> bool:
        """Whether `seconds` more fit in the key's day (True when Redis cannot say)."""
        try:
            return bool(self._limiter.test(RateLimitItemPerDay(limit_s), key_id, cost=seconds))
        except Exception as exc:
            logger.warning("audio allowance of key %s not checked, Redis unavailable: %s", key_id, exc)
            return True

    def charge(self, key_id: str, limit_s: int, seconds: int) -> bool:
        """Charge `seconds`, or refuse (False) when they do not fit (nothing is charged then)."""
        try:
            return bool(self._limiter.hit(RateLimitItemPerDay(limit_s), key_id, cost=seconds))
        except Exception as exc:
            logger.warning("audio of key %s not charged, Redis unavailable: %s", key_id, exc)
            return True

    def charge_up_to(self, key_id: str, limit_s: int, seconds: int) -> int:
        """Charge `seconds` as far as the allowance goes (work already done cannot be refused:
        the counter is filled up); returns the seconds charged."""
        item = RateLimitItemPerDay(limit_s)
        try:
            cost = min(seconds, self._limiter.get_window_stats(item, key_id).remaining)
            if cost > 0:
                self._limiter.hit(item, key_id, cost=cost)
            return max(0, cost)
        except Exception as exc:
            logger.warning("audio of key %s not charged, Redis unavailable: %s", key_id, exc)
            return 0


def charge_measured_audio(client: redis.Redis, allowance: AudioAllowance, *, job_id: str, key_id: str | None,
                          limit_s: int, admitted_s: float | None, measured_s: float) -> int:
    """Charge what a job's measured length costs beyond what it was charged at admission, once
    per job; returns the seconds added (0 when nothing was owed)."""
    if not key_id or not limit_s:
        return 0
    owed_s = charged_s(measured_s) - charged_s(admitted_s)
    if owed_s <= 0:
        return 0
    try:
        if not client.set(redis_keys.audio_charge_corrected_key(job_id), owed_s, nx=True,
                          ex=CORRECTION_MARK_TTL_S):
            return 0  # an earlier delivery of this job already charged it
    except redis.RedisError as exc:
        logger.warning("job %s: audio correction not charged, Redis unavailable: %s", job_id, exc)
        return 0
    added_s = allowance.charge_up_to(key_id, limit_s, owed_s)
    logger.warning("job %s of key %s was admitted as %.1f s but decoded %.1f s: charged %d s more",
                   job_id, key_id, admitted_s or 0.0, measured_s, added_s)
    return added_s
