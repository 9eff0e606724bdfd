"""Enrollment audio no enrollment will ever use is deleted: nothing under `speakers/` is kept
forever.

A speaker's audio parts live in storage only while it enrolls; the worker deletes them once it
has the voiceprint, or the enrollment failed. Three ways leave them behind: a delete that
failed (storage blinked), an API process that died between storing the parts and recording the
speaker, and an enrollment whose task was lost (its row stays `enrolling`). Run by the
reconciler on every worker; deleting twice is harmless, so racing workers need no claim.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from shared.config import Settings
from shared.db.models import utc_now
from shared.db.speakers import SpeakerRepository
from shared.storage import Storage

logger = logging.getLogger(__name__)

SPEAKER_AUDIO_PREFIX = "speakers"
#: Objects deleted per pass at most: a huge backlog is worked off over several passes.
MAX_DELETES_PER_PASS = 1000
LOST_TASK_REASON = "the enrollment was never processed (its task was lost): enroll the speaker again"


def fail_lost_enrollments(settings: Settings, speakers: SpeakerRepository, storage: Storage) -> list[str]:
    """Enrollments still `enrolling` long after they started fail, and their audio goes."""
    cutoff = utc_now() - timedelta(seconds=settings.speaker_audio_orphaned_after_s)
    failed = []
    for speaker_id, keys in speakers.stale_enrolling(cutoff):
        if speakers.mark_failed(speaker_id, LOST_TASK_REASON):
            for key in keys:
                storage.delete(key)
            failed.append(speaker_id)
    if failed:
        logger.warning("failed %d enrollments whose task was lost", len(failed))
    return failed


def delete_orphaned_speaker_audio(settings: Settings, speakers: SpeakerRepository, storage: Storage) -> list[str]:
    """Delete objects under `speakers/` older than `speaker_audio_orphaned_after_s` that no
    enrolling speaker holds; returns their keys. Young objects are left alone: the API stores a
    speaker's parts a moment before it records the speaker."""
    cutoff_s = time.time() - settings.speaker_audio_orphaned_after_s
    old = [obj.key for obj in storage.list_keys(SPEAKER_AUDIO_PREFIX) if obj.modified_at_s < cutoff_s]
    by_speaker: dict[str, list[str]] = {}
    for key in old[:MAX_DELETES_PER_PASS]:
        by_speaker.setdefault(key.split("/")[1] if key.count("/") >= 1 else "", []).append(key)
    in_use = speakers.enrolling_ids([speaker_id for speaker_id in by_speaker if speaker_id])
    deleted = []
    for speaker_id, keys in by_speaker.items():
        if speaker_id in in_use:
            continue
        for key in keys:
            storage.delete(key)
            deleted.append(key)
    if deleted:
        logger.info("retention deleted %d orphaned enrollment audio object(s)", len(deleted))
    return deleted


def sweep_speaker_audio(settings: Settings, speakers: SpeakerRepository, storage: Storage) -> list[str]:
    """One pass: lost enrollments fail, then orphaned audio goes; what was touched."""
    return fail_lost_enrollments(settings, speakers, storage) + delete_orphaned_speaker_audio(
        settings, speakers, storage)
