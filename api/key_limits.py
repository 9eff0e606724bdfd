"""Per-key limits, kept in Redis so they hold across API processes and machines.

Requests per minute and audio seconds per day are rate limits: the `limits` library (the
engine of Flask-Limiter) counts them with its sliding-window counters in Redis, one atomic
script per check. Jobs in flight and live sessions are concurrency limits, not rates: their
truth is the job table (queued + running jobs of the key; its running stream jobs), and a
per-key Redis lock around "count, then insert" keeps two API processes from both admitting
the last free place.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator

import redis
from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.strategies import SlidingWindowCounterRateLimiter

from api.principal import Principal
from shared import redis_keys
from shared.errors import ServiceUnavailableError, TooManyRequestsError
from shared.redis_connect import make_limits_storage

logger = logging.getLogger(__name__)

#: Retry-After for a full in-flight allowance: the server cannot know when a job ends, and a
#: client polling its jobs learns it sooner.
IN_FLIGHT_RETRY_AFTER_S = 5.0
IN_FLIGHT_LOCK_TIMEOUT_S = 10.0


class KeyLimiter:
    def __init__(self, redis_url: str, client: redis.Redis, count_in_flight: Callable[[str], int],
                 count_live_sessions: Callable[[str], int] | None = None) -> None:
        self._storage = make_limits_storage(redis_url, redis_keys.RATE_LIMIT_PREFIX,
                                            socket_connect_timeout=3, socket_timeout=5)
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._redis = client
        self._count_in_flight = count_in_flight
        self._count_live_sessions = count_live_sessions

    def _retry_after_s(self, item: RateLimitItem, key_id: str) -> float:
        with contextlib.suppress(Exception):
            return max(1.0, self._limiter.get_window_stats(item, key_id).reset_time - time.time())
        return float(item.get_expiry())

    def check_request_rate(self, principal: Principal) -> None:
        if not principal.requests_per_minute or principal.key_id is None:
            return
        item = RateLimitItemPerMinute(principal.requests_per_minute)
        if not self._hit(item, principal.key_id, 1):
            raise TooManyRequestsError(
                f"key {principal.key_id} is over its limit of {principal.requests_per_minute} requests per minute",
                retry_after_s=self._retry_after_s(item, principal.key_id))

    def check_audio_fits(self, principal: Principal, audio_duration_s: float) -> None:
        """The early check, charging nothing: refuse before the upload is stored when this
        audio plainly does not fit in what is left of the day (429)."""
        if not principal.audio_seconds_per_day or principal.key_id is None:
            return
        cost_s = self._audio_cost_s(principal, audio_duration_s)
        item = RateLimitItemPerDay(principal.audio_seconds_per_day)
        try:
            fits = self._limiter.test(item, principal.key_id, cost=cost_s)
        except Exception as exc:
            logger.warning("audio allowance of key %s not checked, Redis unavailable: %s", principal.key_id, exc)
            return
        if not fits:
            self._refuse_audio(principal, item, cost_s)

    def charge_audio(self, principal: Principal, audio_duration_s: float) -> None:
        """Count a job's audio against the key's daily allowance, or refuse it (429).

        Called as late as possible, once nothing else can refuse the job (its place in flight
        is taken, its audio stored): a charge cannot be handed back, as the sliding-window
        counter has no refund, so a job refused after it would have paid for nothing."""
        if not principal.audio_seconds_per_day or principal.key_id is None:
            return
        cost_s = self._audio_cost_s(principal, audio_duration_s)
        item = RateLimitItemPerDay(principal.audio_seconds_per_day)
        if not self._hit(item, principal.key_id, cost_s):
            self._refuse_audio(principal, item, cost_s)

    @staticmethod
    def _audio_cost_s(principal: Principal, audio_duration_s: float) -> int:
        cost_s = max(1, math.ceil(audio_duration_s))
        if cost_s > principal.audio_seconds_per_day:
            raise TooManyRequestsError(
                f"this audio ({cost_s} s) is longer than key {principal.key_id}'s whole daily limit of"
                f" {principal.audio_seconds_per_day} audio seconds")
        return cost_s

    def _refuse_audio(self, principal: Principal, item: RateLimitItem, cost_s: int) -> None:
        assert principal.key_id is not None
        raise TooManyRequestsError(
            f"key {principal.key_id} is over its limit of {principal.audio_seconds_per_day} audio seconds per"
            f" day (this audio: {cost_s} s)", retry_after_s=self._retry_after_s(item, principal.key_id))

    def check_audio_left(self, principal: Principal) -> None:
        """A live session's length is unknown at its start: it may start while any of the
        day's allowance is left, and is charged when it ends (`record_audio`)."""
        if not principal.audio_seconds_per_day or principal.key_id is None:
            return
        item = RateLimitItemPerDay(principal.audio_seconds_per_day)
        try:
            left = self._limiter.test(item, principal.key_id, cost=1)
        except Exception as exc:
            logger.warning("audio allowance of key %s not checked, Redis unavailable: %s", principal.key_id, exc)
            return
        if not left:
            raise TooManyRequestsError(
                f"key {principal.key_id} has used its {principal.audio_seconds_per_day} audio seconds for today",
                retry_after_s=self._retry_after_s(item, principal.key_id))

    def has_audio_left(self, principal: Principal) -> bool:
        """Whether any of the day's audio allowance is left (a running live session asks as it
        goes); a Redis that cannot answer says yes, as every limit here does."""
        if not principal.audio_seconds_per_day or principal.key_id is None:
            return True
        try:
            return bool(self._limiter.test(RateLimitItemPerDay(principal.audio_seconds_per_day), principal.key_id,
                                           cost=1))
        except Exception as exc:
            logger.warning("audio allowance of key %s not checked, Redis unavailable: %s", principal.key_id, exc)
            return True

    def record_audio(self, principal: Principal, audio_duration_s: float) -> None:
        """Charge live audio (a running session, as it goes), as far as the allowance goes (a
        counter that refuses a charge larger than what is left cannot overdraw: it is filled up)."""
        if not principal.audio_seconds_per_day or principal.key_id is None or audio_duration_s <= 0:
            return
        item = RateLimitItemPerDay(principal.audio_seconds_per_day)
        try:
            remaining = self._limiter.get_window_stats(item, principal.key_id).remaining
        except Exception as exc:
            logger.warning("audio of key %s not charged, Redis unavailable: %s", principal.key_id, exc)
            return
        cost = min(max(1, math.ceil(audio_duration_s)), remaining)
        if cost > 0:
            self._hit(item, principal.key_id, cost)

    def _hit(self, item: RateLimitItem, key_id: str, cost: int) -> bool:
        """A Redis that cannot answer lets the request through: a limit never takes the API
        down with it (the job queue, on the same Redis, reports the outage itself)."""
        try:
            return self._limiter.hit(item, key_id, cost=cost)
        except Exception as exc:  # redis errors, wrapped or not, depending on the library's version
            logger.warning("rate limit of key %s not checked, Redis unavailable: %s", key_id, exc)
            return True

    def check_in_flight(self, principal: Principal) -> None:
        """The early, lock-free check: refuse before an upload is stored when plainly over."""
        if principal.max_jobs_in_flight and principal.key_id is not None:
            self._refuse_if_full(principal)

    def check_live_sessions(self, principal: Principal) -> None:
        """The early, lock-free check of a new live session, before it waits for a worker."""
        if self._limits_live_sessions(principal):
            self._refuse_if_live_full(principal)

    def _limits_live_sessions(self, principal: Principal) -> bool:
        return bool(principal.max_live_sessions and principal.key_id is not None and self._count_live_sessions)

    @contextlib.contextmanager
    def in_flight_place(self, principal: Principal, *, live_session: bool = False) -> Iterator[None]:
        """Hold the key's admission lock while the caller counts and inserts its job (a live
        session's job is counted against the key's live sessions too)."""
        checks = []
        if principal.max_jobs_in_flight and principal.key_id is not None:
            checks.append(self._refuse_if_full)
        if live_session and self._limits_live_sessions(principal):
            checks.append(self._refuse_if_live_full)
        if not checks:
            yield
            return
        assert principal.key_id is not None
        lock = self._redis.lock(redis_keys.in_flight_lock_key(principal.key_id), timeout=IN_FLIGHT_LOCK_TIMEOUT_S,
                                blocking_timeout=IN_FLIGHT_LOCK_TIMEOUT_S)
        try:
            acquired = lock.acquire()
        except redis.RedisError as exc:
            raise ServiceUnavailableError("the job queue (Redis) is unavailable; try again shortly") from exc
        if not acquired:
            raise TooManyRequestsError(f"key {principal.key_id} is submitting too many jobs at once",
                                       retry_after_s=IN_FLIGHT_RETRY_AFTER_S)
        try:
            for check in checks:
                check(principal)
            yield
        finally:
            with contextlib.suppress(redis.RedisError):
                lock.release()

    def _refuse_if_full(self, principal: Principal) -> None:
        assert principal.key_id is not None
        in_flight = self._count_in_flight(principal.key_id)
        if in_flight >= principal.max_jobs_in_flight:
            raise TooManyRequestsError(
                f"key {principal.key_id} has {in_flight} jobs queued or running, its limit of jobs in flight"
                f" ({principal.max_jobs_in_flight}); wait for one to finish", retry_after_s=IN_FLIGHT_RETRY_AFTER_S)

    def _refuse_if_live_full(self, principal: Principal) -> None:
        assert principal.key_id is not None and self._count_live_sessions is not None
        live = self._count_live_sessions(principal.key_id)
        if live >= principal.max_live_sessions:
            raise TooManyRequestsError(
                f"key {principal.key_id} has {live} live sessions open, its limit (max_live_sessions_per_key ="
                f" {principal.max_live_sessions}); end one first", retry_after_s=IN_FLIGHT_RETRY_AFTER_S)
