"""Every live session is also a job: created when a worker holds it, failed by the API only
when the worker cannot say so itself (it died, or the relay did)."""

from __future__ import annotations

import logging
from dataclasses import replace

from api.deps import ApiDeps
from api.job_service import end_context, load_transcript
from api.streaming import vocabulary as v
from shared import reprocess
from shared.db.models import Job, JobStatus
from shared.db.repository import STREAM_MODE
from shared.jobs import public_models as out
from shared.jobs.final import fail_job
from shared.jobs.public import transcript_model
from shared.jobs.rows import live_session_job
from shared.transcript import Transcript

logger = logging.getLogger(__name__)


def create(deps: ApiDeps, job_id: str, start: v.StartCommand, protocol: str, worker_id: str,
           owner_id: str | None = None) -> Job:
    """The job row of a session, `running` from the start: a worker already holds it."""
    options = {"language": start.language, "hotwords": start.hotwords, "protocol": protocol,
               "sample_rate_hz": start.sample_rate_hz, "output_format": "txt", "reprocess": start.reprocess,
               **({"hotword_set": start.hotword_set, "hotword_set_version": start.hotword_set_version}
                  if start.hotword_set else {})}
    return deps.jobs.create(live_session_job(job_id, options=options, filename=start.name or "live session",
                                             worker_id=worker_id, callback_url=start.callback_url,
                                             api_key_id=owner_id))


def fail(deps: ApiDeps, job_id: str, reason: str) -> None:
    """Fail a session's job when its worker cannot (it is gone); its stored sentences stay."""
    try:
        # Not announced: the relay (Redis) may be what failed, and nobody listens to a session's
        # channel but its lost worker. Its webhook events wait in the outbox for the reconciler.
        fail_job(replace(end_context(deps), redis=None, celery=None), job_id, reason)
    except Exception:  # the database is down too: the stale-stream sweep fails it later
        logger.warning("could not mark stream job %s failed", job_id, exc_info=True)


def stored_sentences(deps: ApiDeps, job: Job) -> Transcript | None:
    """A session's transcript from the sentences stored as they were produced: what a
    session that failed (its worker killed) still has to show."""
    if job.mode != STREAM_MODE or job.status == JobStatus.CANCELED:
        return None  # a canceled session's sentences are deleted with it
    segments = deps.jobs.stream_transcript_segments(job.id)
    return Transcript.from_segments(segments, language=job.options.get("language"),
                                    duration_s=job.audio_duration_s or 0.0, engine=job.engine or "", model="")


def reprocess_view(deps: ApiDeps, job: Job, owner_id: str | None) -> tuple[str, out.Reprocessing] | None:
    """For a session that asked for reprocessing: the stage it is in and its file job, with
    the better transcript once there is one (the session's own `result` stays the live one)."""
    mode = (job.options or {}).get("reprocess", reprocess.NONE)
    if job.mode != STREAM_MODE or mode == reprocess.NONE:
        return None
    child_id = reprocess.reprocess_job_id(job.id)
    child = deps.jobs.find(child_id, owner_id)
    view = out.Reprocessing(
        mode=mode, job_id=child_id, status=child.status if child else None, error=child.error if child else None,
        links=out.ReprocessingLinks(job=f"/v1/jobs/{child_id}", transcript=f"/v1/jobs/{child_id}/transcript"))
    if child is not None and child.status == JobStatus.SUCCEEDED and child.transcript_key:
        view.result = transcript_model(load_transcript(deps, child))
    return reprocess.stage_of(job.status, child.status if child else None), view
