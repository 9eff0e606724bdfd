"""The reconciler: work the database says is owed but no queue will deliver is sent again.

The database is the source of truth; a Redis message can be lost or stranded:

- A whole machine that dies leaves its job `running`, its message unacknowledged until
  Redis' visibility timeout (hours). Live workers look for running jobs whose row went quiet
  and send them again; the redelivered task restarts the job (running -> running).
- A worker that reserved a message just before Redis died (or Redis restarted without the
  message) leaves the job `queued` with no message in any queue. Jobs queued longer than
  `requeue_queued_after_s` whose message is neither waiting in their queue nor freshly
  reserved by a worker are sent again. A job waiting behind a backlog keeps its place.

Each sweep claims what it sends with a conditional update (the reprocessing sweep, whose
sessions are finished rows, with a Redis lock per session: `worker.services.reprocess_sweep`),
so of several workers racing for a job exactly one sends it; a duplicate that is delivered
later finds the job running or finished (both transitions are conditional) and leaves one
result. Other owed work joins as one more entry of `SWEEPS`: webhook deliveries that are due,
and the stored data of jobs that finished longer ago than the retention.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

import redis
from celery import Celery

from shared.config import Settings
from shared.db.repository import JobRepository
from shared.db.retention import RetentionRepository
from shared.db.speakers import SpeakerRepository
from shared.db.webhooks import WebhookRepository
from shared.jobs.dispatch import send_transcribe, send_webhook
from shared.jobs.final import EndContext, fail_job
from shared.storage import Storage
from worker.services.completion import FinishContext
from worker.services.reprocess_sweep import claim_owed_reprocessing
from worker.services.retention import expire_old_data
from worker.services.session_end import retry_unstored
from worker.services.speaker_retention import sweep_speaker_audio

logger = logging.getLogger(__name__)

#: kombu's Redis transport keeps a queue's waiting messages in a list named as the queue, and
#: each message a worker took but has not acknowledged in this hash (delivery tag -> message),
#: with the time it was taken in the sorted set. Celery's own keys, read here, never written.
KOMBU_UNACKED_HASH = "unacked"
KOMBU_UNACKED_INDEX = "unacked_index"
#: Waiting messages are read in pages of this many.
QUEUE_PAGE_SIZE = 500


@dataclass(frozen=True)
class ReconcileContext:
    """What a sweep needs; built once per worker process group."""

    settings: Settings
    jobs: JobRepository
    app: Celery
    #: A client of the broker's Redis (the one the queues live in).
    redis: redis.Redis
    #: Where audio and transcripts live; None: the retention sweep waits for a pass that has it.
    storage: Storage | None = None


Sweep = Callable[[ReconcileContext], list[str]]


def requeue_stale_running(ctx: ReconcileContext) -> list[str]:
    stale_after_s = ctx.settings.stale_job_after_s
    claimed = ctx.jobs.claim_stale_running(ctx.jobs.db_now() - timedelta(seconds=stale_after_s))
    for job_id, queue in claimed:
        logger.warning("job %s has had no sign of life for %.0f s; sending it to %s again", job_id, stale_after_s,
                       queue)
        send_transcribe(ctx.app, job_id, queue)
    return [job_id for job_id, _ in claimed]


def _mentions(raw: bytes | str, job_ids: set[str]) -> set[str]:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return {job_id for job_id in job_ids if job_id in text}


def held_by_broker(client: redis.Redis, queue: str, job_ids: Iterable[str], reserved_grace_s: float) -> set[str]:
    """The jobs among `job_ids` whose message waits in `queue`, or was taken by a worker less
    than `reserved_grace_s` ago (it is about to start). A message is matched by the job id it
    carries (task id and arguments), so messages sent before task ids were job ids count."""
    wanted = set(job_ids)
    held: set[str] = set()
    start = 0
    while wanted - held:
        page = client.lrange(queue, start, start + QUEUE_PAGE_SIZE - 1)
        for raw in page:
            held |= _mentions(raw, wanted - held)
        if len(page) < QUEUE_PAGE_SIZE:
            break
        start += QUEUE_PAGE_SIZE
    if not wanted - held:
        return held
    fresh_since_s = time.time() - reserved_grace_s
    for tag, raw in client.hgetall(KOMBU_UNACKED_HASH).items():
        found = _mentions(raw, wanted - held)
        if not found:
            continue
        taken_at_s = client.zscore(KOMBU_UNACKED_INDEX, tag)
        if taken_at_s is None or taken_at_s >= fresh_since_s:
            held |= found
    return held


def requeue_stalled_queued(ctx: ReconcileContext) -> list[str]:
    threshold_s = ctx.settings.requeue_queued_after_s
    cutoff = ctx.jobs.db_now() - timedelta(seconds=threshold_s)
    candidates = ctx.jobs.stale_queued(cutoff)
    if not candidates:
        return []
    by_queue: dict[str, list[str]] = {}
    for job_id, queue in candidates:
        by_queue.setdefault(queue, []).append(job_id)
    sent: list[str] = []
    for queue, job_ids in by_queue.items():
        held = held_by_broker(ctx.redis, queue, job_ids, reserved_grace_s=threshold_s)
        lost = [job_id for job_id in job_ids if job_id not in held]
        for job_id in ctx.jobs.claim_stale_queued(cutoff, lost):
            logger.warning("job %s has been queued for over %.0f s and no worker started it; sending it to %s again",
                           job_id, threshold_s, queue)
            send_transcribe(ctx.app, job_id, queue)
            sent.append(job_id)
    return sent


def resend_due_webhooks(ctx: ReconcileContext) -> list[str]:
    """Deliveries due for a while that no task attempted (the sender died mid-send, the task
    was lost with Redis, or a retry was due hours after its failed attempt)."""
    webhooks = WebhookRepository(ctx.jobs.session_factory)
    due = webhooks.due(ctx.jobs.db_now() - timedelta(seconds=ctx.settings.webhook_sweep_after_s))
    for delivery_id in due:
        send_webhook(ctx.app, ctx.settings, delivery_id)
    if due:
        logger.info("sent %d due webhook deliveries again", len(due))
    return due


def expire_retained_data(ctx: ReconcileContext) -> list[str]:
    if ctx.storage is None:
        return []
    return expire_old_data(ctx.settings, RetentionRepository(ctx.jobs.session_factory), ctx.storage)


def expire_orphaned_speaker_audio(ctx: ReconcileContext) -> list[str]:
    if ctx.storage is None:
        return []
    return sweep_speaker_audio(ctx.settings, SpeakerRepository(ctx.jobs.session_factory), ctx.storage)


def store_parked_recordings(ctx: ReconcileContext) -> list[str]:
    """Live sessions' recordings that storage could not take at their end, parked on this
    machine's data directory (when this worker shares it with the stream workers)."""
    if ctx.storage is None:
        return []
    return retry_unstored(FinishContext(settings=ctx.settings, jobs=ctx.jobs, storage=ctx.storage, redis=ctx.redis,
                                        celery=ctx.app))


def fail_silent_streams(ctx: ReconcileContext) -> list[str]:
    """Live sessions whose worker stopped touching their job (it and the API both died: had
    either lived, it would have ended the job). They fail, keeping their stored sentences."""
    end = EndContext(settings=ctx.settings, jobs=ctx.jobs, redis=ctx.redis, celery=ctx.app)
    silent = ctx.jobs.silent_streams(ctx.jobs.db_now() - timedelta(seconds=ctx.settings.stale_job_after_s))
    failed = [job_id for job_id in silent if fail_job(end, job_id, "the live session's worker stopped answering")]
    for job_id in failed:
        logger.warning("live session %s had no sign of life for %.0f s; failed", job_id,
                       ctx.settings.stale_job_after_s)
    return failed


def queue_owed_reprocessing(ctx: ReconcileContext) -> list[str]:
    """Sessions that ended, asked for reprocessing and never got their file job (their
    worker died in between): each claimed by one node, which sends a task to copy it
    (`worker.services.reprocess_sweep`). Returns the sessions sent."""
    return claim_owed_reprocessing(ctx.settings, ctx.jobs, ctx.app, ctx.redis)


#: Every sweep of one reconciler pass, by what it looks for.
SWEEPS: dict[str, Sweep] = {
    "running jobs without a sign of life": requeue_stale_running,
    "queued jobs no worker started": requeue_stalled_queued,
    "recordings parked when storage failed": store_parked_recordings,
    "live sessions nobody holds": fail_silent_streams,
    "ended sessions owed their reprocessing": queue_owed_reprocessing,
    "webhook deliveries due": resend_due_webhooks,
    "finished jobs past their retention": expire_retained_data,
    "enrollment audio no enrollment holds": expire_orphaned_speaker_audio,
}


def reconcile(ctx: ReconcileContext, sweeps: dict[str, Sweep] | None = None) -> dict[str, list[str]]:
    """Run each sweep once; one that fails (Redis or the database away) is logged and the
    others still run. Returns what each sweep sent again."""
    results: dict[str, list[str]] = {}
    for name, sweep in (SWEEPS if sweeps is None else sweeps).items():
        try:
            results[name] = sweep(ctx)
        except Exception:  # the reconciler must never take the worker down; the next pass retries
            logger.warning("reconciler sweep %r failed", name, exc_info=True)
            results[name] = []
    return results

