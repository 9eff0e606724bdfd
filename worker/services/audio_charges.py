"""A job's key pays for the audio the worker decoded, not for what its file claimed.

The API charges a job at admission for the length it measured; the worker decodes and knows
the truth. Where the decoded length is longer (a header the probe could not see through, a
job stopped at its mode's limit), the key is charged the difference, once per job. Never
fails the job: a charge that cannot be made is logged (a Redis outage lets work through, as
every limit does).
"""

from __future__ import annotations

import logging
from functools import cache

from shared.audio_allowance import AudioAllowance, charge_measured_audio, daily_limit_s
from shared.db.models import Job
from shared.redis_connect import limits_storage_uri
from worker.services.runtime import WorkerRuntime

logger = logging.getLogger(__name__)


@cache
def allowance_for(redis_url: str) -> AudioAllowance:
    """One counter client per process and Redis (its connection pool is reused)."""
    return AudioAllowance(redis_url)


def charge_decoded_audio(runtime: WorkerRuntime, job: Job, decoded_s: float) -> int:
    """Charge `job`'s key what `decoded_s` costs beyond its admission charge; the seconds added."""
    if not job.api_key_id:
        return 0
    try:
        limit_s = daily_limit_s(runtime.jobs.session_factory, runtime.settings, job.api_key_id)
        if not limit_s:
            return 0
        return charge_measured_audio(runtime.redis, allowance_for(limits_storage_uri(runtime.settings)),
                                     job_id=job.id, key_id=job.api_key_id, limit_s=limit_s,
                                     admitted_s=job.audio_duration_s, measured_s=decoded_s)
    except Exception:  # a side effect of billing: it never fails the job
        logger.warning("job %s: could not charge its decoded audio", job.id, exc_info=True)
        return 0
