"""Runs one transcription job; callable without Celery (tests and benchmarks do).

Idempotent: a job that already ended is left alone, a redelivered job restarts from the
audio, the transcript key is derived from the job id (a rerun overwrites, never adds), and
the final status is a conditional update that only one attempt can win.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from pathlib import Path

import redis

from shared import redis_keys
from shared.audio import decode_16k_mono
from shared.db.models import TERMINAL_STATUSES, Job, JobStatus, utc_now
from shared.errors import AudioTooLongError, OddAsrError
from shared.hotwords import hotword_hits
from shared.job_waiting import LOADING_SPEAKER_MODEL, job_waiting_for
from shared.queue_stats import record_completion_quietly
from shared.schemas import JobEvent, JobOptions
from shared.storage import StorageKeyNotFound
from shared.transcript import Transcript
from worker.engines.base import TranscriptionOptions
from worker.services.audio_charges import charge_decoded_audio
from worker.services.metrics import record_job_finished, record_job_started
from worker.services.runtime import WorkerRuntime
from worker.services.speakers import name_speakers

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5


class JobCanceled(Exception):
    """Raised from the progress callback when the job was canceled while it ran."""


class JobLease:
    """Touches the running job's row in the background while it runs, so the reaper can
    tell a slow job (an engine call that reports no progress for minutes) from a dead one."""

    def __init__(self, runtime: WorkerRuntime, job_id: str) -> None:
        self._runtime = runtime
        self._job_id = job_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def _run(self) -> None:
        interval_s = max(1.0, self._runtime.settings.stale_job_after_s / 4)
        while not self._stop.wait(interval_s):
            try:
                if not self._runtime.jobs.touch_running(self._job_id):
                    return
            except Exception:  # a database blip: the next touch, or the job's own writes, follow
                logger.warning("could not renew the lease of job %s", self._job_id, exc_info=True)

    def __enter__(self) -> JobLease:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def transcript_key_for(job_id: str) -> str:
    return f"transcripts/{job_id}.json"


def _engine_options(mode: str, options: JobOptions) -> TranscriptionOptions:
    return TranscriptionOptions(
        language=options.language,
        hotwords=tuple(options.hotwords),
        diarize=options.diarize,
        mode="sentence" if mode == "sentence" else "file",
        word_timestamps=options.word_timestamps,
        min_speakers=options.min_speakers,
        max_speakers=options.max_speakers,
        use_itn=options.use_itn,
    )


def publish_final(runtime: WorkerRuntime, job_id: str, status: JobStatus) -> None:
    """Wake synchronous waiters; losing this message only costs them a poll."""
    try:
        event = JobEvent(job_id=job_id, status=status.value)
        runtime.redis.publish(redis_keys.job_events_channel(job_id), event.model_dump_json())
    except redis.RedisError:
        logger.warning("could not publish the final status of job %s", job_id, exc_info=True)


def fail_job(runtime: WorkerRuntime, job_id: str, reason: str, **fields: object) -> None:
    if runtime.jobs.transition(job_id, JobStatus.FAILED, error=reason, finished_at=utc_now(), **fields):
        publish_final(runtime, job_id, JobStatus.FAILED)
        _count_failure(runtime, job_id)


def _count_failure(runtime: WorkerRuntime, job_id: str) -> None:
    """Failures are rare: reading the row again for its queue costs nothing that matters."""
    try:
        job = runtime.jobs.find(job_id)
    except Exception:  # the failure is recorded in the database; only its labels are lost
        job = None
    record_job_finished(job.queue if job else "", job.mode if job else "", JobStatus.FAILED.value)


def run_transcription(runtime: WorkerRuntime, job_id: str) -> JobStatus | None:
    """Run job `job_id` to a final status; returns it, or None when there was nothing to do.

    Transient errors (storage or database down) propagate so the task layer can retry.
    """
    job = runtime.jobs.find(job_id)
    if job is None:
        logger.warning("job %s does not exist (deleted?); dropping the task", job_id)
        return None
    if job.status in TERMINAL_STATUSES:
        logger.info("job %s is already %s; nothing to do", job_id, job.status)
        return None
    started_at = utc_now()
    if not runtime.jobs.transition(
        job_id, JobStatus.RUNNING, worker=runtime.identity, started_at=started_at, progress=0.0,
        engine=runtime.engine.name,
    ):
        return None
    record_job_started(job.queue, job.mode, job.created_at, started_at)
    if job.attempts:
        logger.warning("job %s is being retried (attempt %d)", job_id, job.attempts + 1)
    started_s = time.monotonic()
    lease = JobLease(runtime, job_id)
    try:
        with lease:
            options = JobOptions(**job.options)
            transcript = _transcribe(runtime, job_id, job.audio_key or "", job.mode, options,
                                     owner=job.api_key_id or "")
            charge_decoded_audio(runtime, job, transcript.duration_s)
            if options.mask_sensitive_words:
                transcript = runtime.sensitive_words.mask_transcript(transcript)
    except JobCanceled:
        logger.info("job %s was canceled while running", job_id)
        record_job_finished(job.queue, job.mode, JobStatus.CANCELED.value)
        return JobStatus.CANCELED
    except StorageKeyNotFound:
        if runtime.jobs.get(job_id).status == JobStatus.CANCELED:
            record_job_finished(job.queue, job.mode, JobStatus.CANCELED.value)
            return JobStatus.CANCELED
        fail_job(runtime, job_id, "the uploaded audio is missing from storage")
        return JobStatus.FAILED
    except AudioTooLongError as exc:
        _fail_too_long(runtime, job, exc)
        return JobStatus.FAILED
    except OddAsrError as exc:
        if exc.transient:
            raise
        fail_job(runtime, job_id, exc.message)
        return JobStatus.FAILED
    key = transcript_key_for(job_id)
    runtime.storage.put_bytes(key, transcript.model_dump_json().encode("utf-8"))
    processing_s = time.monotonic() - started_s
    if runtime.jobs.transition(
        job_id, JobStatus.SUCCEEDED, transcript_key=key, finished_at=utc_now(), progress=1.0,
        audio_duration_s=transcript.duration_s, processing_s=processing_s,
        hotword_hits=hotword_hits(transcript, options.hotwords),  # once here: GET only reads them
    ):
        publish_final(runtime, job_id, JobStatus.SUCCEEDED)
        # The queue's rolling RTF and drain rate (positions, ETAs, admission); never fails the job.
        record_completion_quietly(runtime.redis, job.queue, transcript.duration_s, processing_s)
        record_job_finished(job.queue, job.mode, JobStatus.SUCCEEDED.value, audio_s=transcript.duration_s,
                            processing_s=processing_s)
        return JobStatus.SUCCEEDED
    # Canceled while the transcript was being written: honour the cancel. Another attempt that
    # won (a job sent again while this one still ran) keeps the transcript: same key, its copy.
    status = JobStatus(runtime.jobs.get(job_id).status)
    if status == JobStatus.CANCELED:
        runtime.storage.delete(key)
        record_job_finished(job.queue, job.mode, JobStatus.CANCELED.value)
    return status


def _fail_too_long(runtime: WorkerRuntime, job: Job, exc: AudioTooLongError) -> None:
    """Decoding stopped at the mode's limit: the job fails saying so, and records (and its key
    pays for) the audio decoded up to there, not the length its file claimed."""
    limit_s = exc.limit_s
    claimed = f", although its file said {job.audio_duration_s:.1f} s" if job.audio_duration_s else ""
    reason = (f"the audio lasts more than {limit_s:.0f} s, the limit of {job.mode} jobs{claimed}: decoding"
              f" stopped at {exc.measured_s:.1f} s")
    if job.mode == "sentence":
        reason += "; send it as a file job (mode=file), or split it"
    else:
        reason += "; split it and send the parts"
    logger.warning("job %s: %s", job.id, reason)
    charge_decoded_audio(runtime, job, exc.measured_s)
    fail_job(runtime, job.id, reason, audio_duration_s=exc.measured_s)


def _transcribe(
    runtime: WorkerRuntime, job_id: str, audio_key: str, mode: str, options: JobOptions, owner: str = ""
) -> Transcript:
    """`owner`: the job's key ('' with auth off), whose voiceprints name its speakers."""
    with tempfile.TemporaryDirectory(prefix="oddasr-job-") as tmp:
        path = Path(tmp) / "audio"
        runtime.storage.download_to(audio_key, path)
        # The mode's limit, not the service's: a sentence job never decodes more than a sentence.
        audio = decode_16k_mono(path, max_duration_s=runtime.settings.max_duration_s_for(mode))
    last_write_s = 0.0

    def report(fraction: float) -> None:
        nonlocal last_write_s
        now_s = time.monotonic()
        if fraction < 1.0 and now_s - last_write_s < PROGRESS_INTERVAL_S:
            return
        last_write_s = now_s
        if not runtime.jobs.set_progress(job_id, min(fraction, 0.99)):
            raise JobCanceled(job_id)

    waits_for_speaker_model = options.diarize and not getattr(runtime.engine, "speaker_model_ready", True)
    with (job_waiting_for(runtime.redis, job_id, LOADING_SPEAKER_MODEL) if waits_for_speaker_model
          else contextlib.nullcontext()):
        transcript = runtime.engine.transcribe(audio, _engine_options(mode, options), progress=report)
    if options.identify_speakers and options.diarize:
        transcript = name_speakers(runtime, owner, audio, transcript)
    return transcript
