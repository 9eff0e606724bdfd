"""Submitting, waiting for, cancelling and describing jobs: the API's side of the queue."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from dataclasses import replace

import redis
from kombu.exceptions import KombuError

from api.admission import check_admission
from api.deps import ApiDeps
from api.hotword_sets import resolve_hotwords
from api.principal import ANONYMOUS, Principal
from api.routing import choose_queue
from api.uploads import ReceivedAudio
from shared import redis_keys
from shared.db.models import TERMINAL_STATUSES, Job, JobStatus
from shared.errors import ConflictError, ForbiddenError, GoneError, OddAsrError, ServiceUnavailableError
from shared.jobs import final as end_jobs
from shared.jobs.dispatch import send_transcribe
from shared.jobs.final import EndContext, fail_job
from shared.jobs.keys import audio_key
from shared.jobs.rows import queued_job
from shared.schemas import JobEvent, JobOptions
from shared.transcript import Transcript

logger = logging.getLogger(__name__)

#: Synchronous answers name their job, so a client can look it up (timings, re-render).
JOB_ID_HEADER = "X-OddASR-Job-Id"

#: While waiting for a pub/sub event, re-read the job this often in case the event was lost.
WAIT_RECHECK_INTERVAL_S = 1.0


def submit_job(deps: ApiDeps, audio: ReceivedAudio, mode: str, options: JobOptions,
               callback_url: str | None = None, principal: Principal = ANONYMOUS,
               hotword_set: str | None = None) -> Job:
    """Store the audio, record the job as queued, and send the task by name to its queue.

    The key's limits are checked before the audio is stored (a refused upload costs no
    storage), then, under the key's lock as the row is inserted, its jobs in flight once more
    and only then its daily audio charged: a job refused for its place, or by a storage failure,
    pays nothing (a database or queue failure after the charge still has paid)."""
    options = resolve_hotwords(deps, principal, hotword_set, options)
    if not options.mask_sensitive_words and not principal.is_admin:
        raise ForbiddenError("only an admin key may turn off sensitive-word masking (mask_sensitive_words=false)")
    queue = choose_queue(deps.settings, mode, deps.redis)
    check_admission(deps, queue)  # a full queue: 503 + Retry-After, before the key is charged
    deps.limiter.check_in_flight(principal)
    deps.limiter.check_audio_fits(principal, audio.info.duration_s)
    job_id = uuid.uuid4().hex
    key = audio_key(job_id)
    audio.file.stream.seek(0)
    deps.storage.put_file(key, audio.file.stream)
    job = queued_job(job_id, mode=mode, queue=queue, options=options.model_dump(), audio_key=key,
                     filename=audio.filename, size_bytes=audio.size_bytes, duration_s=audio.info.duration_s,
                     callback_url=callback_url, api_key_id=principal.key_id)
    try:
        with deps.limiter.in_flight_place(principal):
            deps.limiter.charge_audio(principal, audio.info.duration_s)
            deps.jobs.create(job)
    except OddAsrError:
        deps.storage.delete(key)
        raise
    except Exception as exc:
        deps.storage.delete(key)
        raise ServiceUnavailableError("the job database is unavailable; try again shortly") from exc
    try:
        send_transcribe(deps.celery, job_id, queue)
    except (KombuError, OSError, redis.RedisError) as exc:
        logger.error("could not queue job %s: %s", job_id, exc)
        # Neither published nor its webhooks sent now: both would wait on the broker that just
        # failed (and nobody waits: the client gets this 503). The reconciler's sweep sends them.
        fail_job(replace(end_context(deps), redis=None, celery=None), job_id, "the job queue (Redis) was unreachable")
        deps.storage.delete(key)
        raise ServiceUnavailableError("the job queue is unavailable; try again shortly") from exc
    logger.info("job %s queued on %s (%.1f s of audio, key %s)", job_id, queue, audio.info.duration_s,
                principal.key_id or "-")
    return job


def wait_for_final(deps: ApiDeps, job_id: str, timeout_s: float) -> Job:
    """Block until the job reaches a final status or `timeout_s` passes; return it either way.

    Subscribes to the job's event channel, so the answer comes as soon as the worker
    publishes; a periodic re-read covers an event missed while Redis blinked.
    """
    deadline_s = time.monotonic() + timeout_s
    pubsub = deps.redis.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(redis_keys.job_events_channel(job_id))
        while True:
            job = deps.jobs.get(job_id)
            remaining_s = deadline_s - time.monotonic()
            if job.status in TERMINAL_STATUSES or remaining_s <= 0:
                return job
            message = pubsub.get_message(timeout=min(remaining_s, WAIT_RECHECK_INTERVAL_S))
            if message and message.get("type") == "message":
                JobEvent.model_validate_json(message["data"])
    except redis.RedisError:
        logger.warning("lost the event channel of job %s; polling instead", job_id)
        return _poll_until_final(deps, job_id, deadline_s)
    finally:
        with contextlib.suppress(redis.RedisError):
            pubsub.close()


def _poll_until_final(deps: ApiDeps, job_id: str, deadline_s: float) -> Job:
    while True:
        job = deps.jobs.get(job_id)
        if job.status in TERMINAL_STATUSES or time.monotonic() >= deadline_s:
            return job
        time.sleep(0.2)


def cancel_job(deps: ApiDeps, job_id: str, owner_id: str | None = None) -> Job:
    """Cancel a queued or running job and delete its stored audio and transcript."""
    job = deps.jobs.get(job_id, owner_id)
    end_jobs.cancel_job(end_context(deps), job_id, "canceled by the client")
    for key in (job.audio_key, job.transcript_key):
        if key:
            deps.storage.delete(key)
    deps.jobs.clear_stored_keys(job_id)
    return deps.jobs.get(job_id)


def end_context(deps: ApiDeps) -> EndContext:
    """What `shared.jobs.final` needs to end one of the API's jobs."""
    return EndContext(settings=deps.settings, jobs=deps.jobs, redis=deps.redis, celery=deps.celery)


def load_transcript(deps: ApiDeps, job: Job) -> Transcript:
    """The stored transcript of a succeeded job, or the error that says why there is none."""
    if job.status == JobStatus.FAILED:
        raise ConflictError(f"job {job.id} failed: {job.error}")
    if job.status == JobStatus.CANCELED:
        raise GoneError(f"job {job.id} was canceled; it has no transcript")
    if job.status != JobStatus.SUCCEEDED:
        raise ConflictError(f"job {job.id} is {job.status}; poll /v1/jobs/{job.id} until it has succeeded")
    if job.data_expired_at is not None:
        raise GoneError(f"the transcript of job {job.id} expired: finished jobs keep their data for the"
                        f" configured retention ({deps.settings.retention_days:g} days)")
    if not job.transcript_key:
        raise GoneError(f"the transcript of job {job.id} was deleted")
    try:
        return Transcript.model_validate_json(deps.storage.get_bytes(job.transcript_key))
    except OddAsrError:
        raise
    except (ValueError, json.JSONDecodeError) as exc:
        raise ServiceUnavailableError(f"the stored transcript of job {job.id} is unreadable") from exc
