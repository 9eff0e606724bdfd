"""Finishing a job: the one place a worker ends one, for file jobs, live sessions and the
reconciler alike.

A finish is: the job's objects already stored -> `shared.jobs.final.end_job` (the conditional
transition to its final status, the status published, its webhook events queued, the one
sequence the API's final statuses take too) -> metrics. Only the attempt whose transition wins
does the steps after it. One that loses to a cancel
(the API deleted what was stored then) deletes what it stored since; one that loses to
another attempt of the same job leaves that attempt's result (same keys: its copy).
Side effects (publish, metrics, webhooks) never fail the job.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from celery import Celery

from shared.db.models import JobStatus
from shared.jobs.final import EndContext, end_job
from shared.jobs.keys import transcript_key
from shared.queue_stats import record_completion_quietly
from shared.storage import Storage
from shared.transcript import Transcript
from worker.services.metrics import record_job_finished
from worker.services.runtime import WorkerRuntime

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class FinishContext(EndContext):
    """What finishing a job touches: what ending it does, and the storage of its objects."""

    redis: redis.Redis
    storage: Storage

    @classmethod
    def of(cls, runtime: WorkerRuntime, celery: Celery | None = None) -> FinishContext:
        return cls(settings=runtime.settings, jobs=runtime.jobs, storage=runtime.storage, redis=runtime.redis,
                   celery=celery)


@dataclass(frozen=True)
class Labels:
    """The job's metric labels; read from its row when the caller has none at hand."""

    queue: str
    mode: str


@dataclass(frozen=True)
class Finished:
    #: True when this attempt's transition won (it published, counted and queued webhooks).
    changed: bool
    #: The job's status now: the target when `changed`, else what the row says.
    status: JobStatus


def store_transcript(ctx: FinishContext, job_id: str, transcript: Transcript | str) -> str:
    """Store the job's transcript under its key (a rerun overwrites it); returns the key."""
    key = transcript_key(job_id)
    body = transcript if isinstance(transcript, str) else transcript.model_dump_json()
    ctx.storage.put_bytes(key, body.encode("utf-8"))
    return key


def finish(ctx: FinishContext, job_id: str, status: JobStatus, *, labels: Labels | None = None,
           stored_keys: Sequence[str] = (), metric_audio_s: float | None = None,
           metric_processing_s: float | None = None, rate_queue: bool = False, **fields: object) -> Finished:
    """Move the job to its final `status` (with `fields` on its row) and do what follows.

    `stored_keys`: objects stored for this finish, deleted if the job was canceled meanwhile.
    `metric_audio_s`, `metric_processing_s`: what the metrics count (the processing time only
    of transcriptions timed end to end), and with `rate_queue` the queue's rolling speed that
    positions and ETAs read."""
    if end_job(ctx, job_id, status, **fields):
        labels = labels or _labels_of(ctx, job_id)
        if rate_queue and metric_audio_s is not None and metric_processing_s is not None:
            record_completion_quietly(ctx.redis, labels.queue, metric_audio_s, metric_processing_s)
        record_job_finished(labels.queue, labels.mode, status.value, audio_s=metric_audio_s,
                            processing_s=metric_processing_s)
        return Finished(changed=True, status=status)
    now = JobStatus(ctx.jobs.get(job_id).status)
    if now == JobStatus.CANCELED and stored_keys:
        clean_up_canceled(ctx, job_id, stored_keys, labels)
    return Finished(changed=False, status=now)


def fail(ctx: FinishContext, job_id: str, reason: str, *, labels: Labels | None = None,
         metric_audio_s: float | None = None, **fields: object) -> bool:
    """Fail the job with a reason a person can act on; True when this call failed it."""
    return finish(ctx, job_id, JobStatus.FAILED, labels=labels, metric_audio_s=metric_audio_s, error=reason,
                  **fields).changed


def clean_up_canceled(ctx: FinishContext, job_id: str, stored_keys: Sequence[str],
                      labels: Labels | None = None) -> None:
    """A job canceled while its worker stored its objects: the API deleted what was stored
    then; these are newer, and go too."""
    for key in stored_keys:
        ctx.storage.delete(key)
    ctx.jobs.clear_stored_keys(job_id)
    note_canceled(ctx, job_id, labels)


def note_canceled(ctx: FinishContext, job_id: str, labels: Labels | None = None) -> None:
    """A worker found its job canceled (the API wrote the status and sent its events)."""
    logger.info("job %s was canceled while it ran", job_id)
    labels = labels or _labels_of(ctx, job_id)
    record_job_finished(labels.queue, labels.mode, JobStatus.CANCELED.value)


def _labels_of(ctx: FinishContext, job_id: str) -> Labels:
    """Reading the row again costs nothing that matters next to a job's end."""
    try:
        job = ctx.jobs.find(job_id)
    except Exception:  # the final status is in the database; only the metric's labels are lost
        job = None
    return Labels(queue=job.queue if job else "", mode=job.mode if job else "")
