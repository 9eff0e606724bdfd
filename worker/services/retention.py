"""Deletes the audio and transcripts of jobs that finished longer ago than the retention.

Run by the reconciler on every worker. Storage is deleted first and the keys forgotten after,
so a crash in between leaves keys that the next pass deletes again (a missing object is not
an error), never an object no row points to.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from shared.config import Settings
from shared.db.models import utc_now
from shared.db.retention import RetentionRepository
from shared.storage import Storage

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86400.0


def expire_old_data(settings: Settings, retention: RetentionRepository, storage: Storage) -> list[str]:
    """One pass; returns the ids of the jobs whose data (audio or all of it) was deleted."""
    now = utc_now()
    touched: list[str] = []
    audio_days = settings.audio_retention_days
    if audio_days is None:
        audio_days = settings.retention_days
    if audio_days > 0:
        for job_id, key in retention.audio_finished_before(now - timedelta(seconds=audio_days * SECONDS_PER_DAY)):
            storage.delete(key)
            retention.forget_audio(job_id)
            touched.append(job_id)
    if settings.retention_days > 0:
        cutoff = now - timedelta(seconds=settings.retention_days * SECONDS_PER_DAY)
        for job_id, keys in retention.data_finished_before(cutoff):
            for key in keys:
                storage.delete(key)
            retention.mark_expired(job_id)
            touched.append(job_id)
    if touched:
        logger.info("retention deleted the stored data of %d finished jobs", len(set(touched)))
    return sorted(set(touched))
