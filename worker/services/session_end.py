"""A live session's end, stored: its recording, its transcript and its job's final status; and
what happens when storage cannot take them then.

Until it is stored, a session's recording exists in one place only: the stream worker's disk.
So a failed store never deletes it. The recording is parked beside a small JSON record of the
session's end (`data_dir/stream-recordings/unstored/`), its job stays `running` (touched, so
the sweep of silent sessions leaves it), and storing is tried again every
`stream_recording_retry_interval_s`: by the stream worker processes, and by the reconciler of
any Celery worker that shares the data directory. After `stream_recording_store_attempts` the
job fails, saying so; the recording stays parked and is still stored, and attached to the
failed job (so `GET /v1/jobs/{id}/audio` serves it), as soon as storage takes it. Only a job
canceled meanwhile lets it go.

Processes that share the directory take turns on each record through a lock file of its own
(`flock`), so a recording is stored by one of them at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from shared.config import Settings
from shared.db.models import JobStatus
from shared.db.repository import STREAM_MODE
from shared.hotwords import hotword_hits
from shared.jobs.keys import audio_key
from shared.transcript import Transcript
from worker.services.completion import FinishContext, Labels, fail, finish, store_transcript
from worker.services.reprocess import queue_reprocess

logger = logging.getLogger(__name__)

UNSTORED_DIR = Path("stream-recordings") / "unstored"


class SessionEnding(BaseModel):
    """What a session's end writes, kept as JSON beside a parked recording."""

    job_id: str
    session_id: str
    #: The final status the session reached (`succeeded`, or `failed` with `error`).
    status: str
    error: str = ""
    transcript_json: str
    duration_s: float
    processing_s: float
    reprocess: str = "none"
    #: The session's hotwords: their hits are stored with the job when it ends.
    hotwords: list[str] = []
    #: Store attempts made so far (the one at the session's end included).
    attempts: int = 0
    next_attempt_at_s: float = 0.0
    #: True once the job was failed for want of storage (the recording is still kept).
    gave_up: bool = False


#: A live session's metric labels (its row's queue and mode).
STREAM_LABELS = Labels(queue=STREAM_MODE, mode=STREAM_MODE)


def store_session_end(ctx: FinishContext, ending: SessionEnding, recording: Path) -> bool:
    """Store the recording and the transcript, then end the job. Raises when storage fails
    (nothing changed then but objects that a retry overwrites). True when the job succeeded
    now, so its reprocessing is owed."""
    job_id = ending.job_id
    recording_key = audio_key(job_id)
    with recording.open("rb") as handle:
        ctx.storage.put_file(recording_key, handle)
    size_bytes = recording.stat().st_size
    key = store_transcript(ctx, job_id, ending.transcript_json)
    status = JobStatus(ending.status)
    outcome = {"error": ending.error} if status == JobStatus.FAILED else {"progress": 1.0}
    finished = finish(ctx, job_id, status, labels=STREAM_LABELS, stored_keys=[recording_key, key],
                      metric_audio_s=ending.duration_s, transcript_key=key, audio_duration_s=ending.duration_s,
                      processing_s=ending.processing_s, audio_size_bytes=size_bytes, hotword_hits=_hits(ending),
                      **outcome)
    return finished.changed and status == JobStatus.SUCCEEDED


def _hits(ending: SessionEnding) -> list[dict[str, object]]:
    return hotword_hits(Transcript.model_validate_json(ending.transcript_json), ending.hotwords)


def reprocess_quietly(ctx: FinishContext, ending: SessionEnding) -> None:
    """Queue the session's reprocessing; a failure leaves it to the reconciler's sweep."""
    try:
        queue_reprocess(ctx.jobs, ctx.storage, ctx.settings, ctx.celery, ctx.redis, ending.job_id, ending.reprocess)
    except Exception:
        logger.exception("session %s: could not queue its reprocessing; the reconciler will", ending.session_id)


def park(settings: Settings, ending: SessionEnding, recording: Path) -> Path:
    """Keep the recording for later: moved (never copied) beside its record; returns its path."""
    directory = Path(settings.data_dir) / UNSTORED_DIR
    directory.mkdir(parents=True, exist_ok=True)
    parked = directory / f"{ending.session_id}.wav"
    os.replace(recording, parked)
    ending.attempts = max(ending.attempts, 1)
    ending.next_attempt_at_s = time.time() + settings.stream_recording_retry_interval_s
    _write_record(directory / f"{ending.session_id}.json", ending)
    logger.error("session %s: its recording could not be stored; kept at %s, storing is tried again every %.0f s",
                 ending.session_id, parked, settings.stream_recording_retry_interval_s)
    return parked


def _write_record(path: Path, ending: SessionEnding) -> None:
    """Atomically: a crash mid-write leaves the old record, never half of one."""
    scratch = path.with_suffix(".json.tmp")
    scratch.write_text(ending.model_dump_json(), encoding="utf-8")
    os.replace(scratch, path)


@contextlib.contextmanager
def _locked(record: Path) -> Iterator[bool]:
    """Whether this process holds the record's lock (another process working on it: False)."""
    lock_path = record.with_suffix(".lock")
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield record.exists()  # stored and removed by another process meanwhile: nothing to do
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _forget(record: Path) -> None:
    for path in (record.with_suffix(".wav"), record, record.with_suffix(".lock")):
        path.unlink(missing_ok=True)


def _give_up(ctx: FinishContext, ending: SessionEnding) -> None:
    """Fail the job for want of storage, keeping its sentences (and the parked recording)."""
    reason = (f"the session's recording could not be stored ({ending.attempts} attempts over"
              f" {ctx.settings.stream_recording_retry_interval_s * (ending.attempts - 1):.0f} s); it is kept on"
              " the stream worker and will be served with this job once storage takes it")
    fail(ctx, ending.job_id, reason, labels=STREAM_LABELS, metric_audio_s=ending.duration_s,
         audio_duration_s=ending.duration_s, processing_s=ending.processing_s, hotword_hits=_hits(ending))
    ending.gave_up = True
    logger.error("session %s: %s", ending.session_id, reason)


def _attach_late(ctx: FinishContext, ending: SessionEnding, recording: Path) -> None:
    """The job ended without its recording (failed for want of storage, or by the sweep of
    silent sessions): store it now and attach it, so the job serves it."""
    recording_key = audio_key(ending.job_id)
    with recording.open("rb") as handle:
        ctx.storage.put_file(recording_key, handle)
    if not ctx.jobs.attach_recording(ending.job_id, recording_key, recording.stat().st_size):
        ctx.storage.delete(recording_key)  # canceled or expired meanwhile: not wanted any more


def _retry_one(ctx: FinishContext, record: Path) -> str | None:
    """One parked recording, if its time has come; the job id when it is settled now."""
    ending = SessionEnding.model_validate_json(record.read_text(encoding="utf-8"))
    job = ctx.jobs.find(ending.job_id)
    if job is None or job.status == JobStatus.CANCELED:
        logger.info("session %s: its job is %s; its parked recording goes", ending.session_id,
                    "canceled" if job else "gone")
        _forget(record)
        return ending.job_id
    running = job.status == JobStatus.RUNNING
    if running:
        ctx.jobs.touch_running(ending.job_id)  # alive: the sweep of silent sessions leaves it
    if time.time() < ending.next_attempt_at_s:
        return None
    recording = record.with_suffix(".wav")
    try:
        if running:
            reprocess_now = store_session_end(ctx, ending, recording)
        else:
            reprocess_now = False
            _attach_late(ctx, ending, recording)
    except Exception as exc:
        ending.attempts += 1
        ending.next_attempt_at_s = time.time() + ctx.settings.stream_recording_retry_interval_s
        logger.warning("session %s: storing its recording failed again (attempt %d): %s", ending.session_id,
                       ending.attempts, exc)
        if running and ending.attempts >= ctx.settings.stream_recording_store_attempts:
            _give_up(ctx, ending)
        _write_record(record, ending)
        return None
    logger.info("session %s: its parked recording is stored (attempt %d)", ending.session_id, ending.attempts + 1)
    _forget(record)
    if reprocess_now:
        reprocess_quietly(ctx, ending)
    return ending.job_id


def retry_unstored(ctx: FinishContext) -> list[str]:
    """One pass over the parked recordings of this data directory; the jobs settled now."""
    directory = Path(ctx.settings.data_dir) / UNSTORED_DIR
    if not directory.is_dir():
        return []
    settled = []
    for record in sorted(directory.glob("*.json")):
        with _locked(record) as mine:
            if not mine:
                continue
            try:
                job_id = _retry_one(ctx, record)
            except Exception:  # the database away, a damaged record: the next pass tries again
                logger.warning("could not retry the parked recording %s", record.name, exc_info=True)
                continue
        if not record.exists():
            record.with_suffix(".lock").unlink(missing_ok=True)
        if job_id:
            settled.append(job_id)
    return settled
