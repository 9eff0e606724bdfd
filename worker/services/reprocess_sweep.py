"""The reprocessing a live session is owed when its worker died before queueing it: found by
the reconciler, copied by a task, each session by one worker at a time.

Every worker node runs the reconciler, so every node finds the same owed sessions. Each
session is claimed in Redis (a lock with a token and a lease, `shared.redis_keys`
`reprocess_claim_key`) by the one sweep that sends its copy task; other sweeps pass it by
while the claim holds. The task resumes the claim with the token it carries, keeps it alive
while it copies the recording into the file job, and deletes it once the job exists. A worker
that dies meanwhile stops renewing it: it expires after `reprocess_claim_lease_s` and the next
sweep on any node claims the session again. A message whose claim expired while it waited
finds the session claimed by a newer one and leaves it; the file job's id is derived from the
session's, so even a copy made after a lost claim leaves one job.

The copy runs in a task on the file queue (where its job goes), never in the heartbeat thread
that runs the reconciler: a recording takes seconds to copy from S3, and a late heartbeat
makes the node look dead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

import redis
from celery import Celery
from redis.exceptions import LockError

from shared.config import Settings
from shared.db.repository import JobRepository
from shared.jobs.dispatch import send_reprocess
from shared.redis_keys import reprocess_claim_key
from worker.services.completion import FinishContext
from worker.services.reprocess import queue_reprocess

logger = logging.getLogger(__name__)

#: A session's own worker queues its reprocessing within seconds of its end; the sweep looks
#: after this grace, and this far back.
REPROCESS_GRACE = timedelta(seconds=60)
REPROCESS_LOOKBACK = timedelta(days=1)


class ReprocessClaim:
    """One session's claim: a redis-py lock, so taking it is SET NX PX and renewing or
    releasing it is a script that checks the token first (Redis' clock decides expiry)."""

    def __init__(self, client: redis.Redis, session_job_id: str, lease_s: float) -> None:
        self.session_job_id = session_job_id
        self.lease_s = lease_s
        self._lock = client.lock(reprocess_claim_key(session_job_id), timeout=lease_s, blocking=False,
                                 thread_local=False)

    @property
    def token(self) -> str:
        token = self._lock.local.token
        if token is None:
            raise LockError("the claim is not held", lock_name=self._lock.name)
        return token.decode() if isinstance(token, bytes) else str(token)

    def take(self) -> bool:
        """A new claim; False while another holds one."""
        return bool(self._lock.acquire())

    def resume(self, token: str) -> bool:
        """Go on with the claim `token` names (renewed for a whole lease), or take a new one
        if it expired and nobody else claimed the session meanwhile; False if somebody did."""
        self._lock.local.token = token.encode()
        with contextlib.suppress(LockError):
            return bool(self._lock.reacquire())
        self._lock.local.token = None
        return self.take()

    def renew(self) -> bool:
        try:
            return bool(self._lock.reacquire())
        except LockError:
            return False

    def release(self) -> None:
        with contextlib.suppress(LockError):
            self._lock.release()

    @contextlib.contextmanager
    def kept_alive(self) -> Iterator[None]:
        """Renew the claim every third of its lease while the body runs."""
        stop = threading.Event()

        def renew_until_stopped() -> None:
            while not stop.wait(self.lease_s / 3):
                try:
                    if not self.renew():
                        logger.warning("session %s: its reprocessing claim was lost while it was copied",
                                       self.session_job_id)
                        return
                except redis.RedisError:  # a blip: the next renewal, well inside the lease, follows
                    logger.warning("could not renew the reprocessing claim of session %s", self.session_job_id,
                                   exc_info=True)

        renewer = threading.Thread(target=renew_until_stopped, name=f"reprocess-claim-{self.session_job_id}",
                                   daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join(timeout=5)


def claim_owed_reprocessing(settings: Settings, jobs: JobRepository, celery: Celery, client: redis.Redis) -> list[str]:
    """One sweep: claim the sessions owed their reprocessing (at most
    `reprocess_sweep_max_sessions`, a SQL LIMIT) that nobody holds, and send each its copy
    task. Returns the sessions sent."""
    now = jobs.db_now()  # the sessions' ends were stamped on other hosts' clocks: judge by the database's
    owed = jobs.streams_owed_reprocessing(now - REPROCESS_LOOKBACK, now - REPROCESS_GRACE,
                                          limit=settings.reprocess_sweep_max_sessions)
    sent = []
    for session_job_id, mode in owed:
        claim = ReprocessClaim(client, session_job_id, settings.reprocess_claim_lease_s)
        if not claim.take():  # another node's task waits for a worker, or copies it now
            continue
        try:
            send_reprocess(celery, settings, session_job_id, mode, claim.token)
        except Exception:
            claim.release()
            raise
        logger.warning("live session %s never had its reprocessing queued; sent it to %s", session_job_id,
                       settings.file_queue)
        sent.append(session_job_id)
    return sent


def reprocess_claimed(ctx: FinishContext, session_job_id: str, mode: str, claim_token: str) -> str | None:
    """The copy task's work: make the session's file job under the sweep's claim. Returns the
    job's id; None when another worker holds the session or nothing was made. A failure (the
    file queue full, storage away) keeps the claim until it expires: the next try waits a lease."""
    claim = ReprocessClaim(ctx.redis, session_job_id, ctx.settings.reprocess_claim_lease_s)
    if not claim.resume(claim_token):
        logger.info("session %s: another worker holds its reprocessing; this task leaves it", session_job_id)
        return None
    try:
        with claim.kept_alive():
            child = queue_reprocess(ctx.jobs, ctx.storage, ctx.settings, ctx.celery, ctx.redis, session_job_id, mode)
    except Exception:  # one unreadable recording must not take the worker down; tried again later
        logger.warning("could not queue the reprocessing of session %s; tried again in %.0f s", session_job_id,
                       claim.lease_s, exc_info=True)
        return None
    claim.release()
    if child:
        logger.warning("live session %s never had its reprocessing queued; queued as %s", session_job_id, child)
    return child
