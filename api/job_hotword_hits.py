"""A job's hotword hits as `GET /v1/jobs/{id}` shows them: the ones the worker stored.

Matching every hotword against a transcript is work for the worker that finished the job
(it stores the result on the job); a read only returns it. Two cases remain here, both
bounded: a job that ended before the hits were stored (migration 0009) gets them computed
on its first read and stored, so that is the only time; a live session that is still
running shows the hits of its sentences so far, over at most the capped hotwords of its
start message.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from api.deps import ApiDeps
from shared.db.models import TERMINAL_STATUSES, Job
from shared.hotwords import hotword_hits
from shared.transcript import Transcript

logger = logging.getLogger(__name__)


def hotword_hits_of(deps: ApiDeps, job: Job, transcript: Transcript) -> list[dict[str, object]]:
    """The hits of `job`, whose transcript (or a live session's sentences) is `transcript`."""
    if job.hotword_hits is not None:
        return job.hotword_hits
    hits = hotword_hits(transcript, list((job.options or {}).get("hotwords") or []))
    if job.status in TERMINAL_STATUSES:
        try:
            deps.jobs.store_hotword_hits(job.id, hits)
        except SQLAlchemyError:  # the next read computes them again; this one still answers
            logger.warning("could not store the hotword hits of job %s", job.id, exc_info=True)
    return hits
