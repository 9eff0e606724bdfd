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

from celery import Celery

from shared.audio import decode_16k_mono
from shared.db.models import TERMINAL_STATUSES, Job, JobStatus, utc_now
from shared.errors import AudioTooLongError, OddAsrError
from shared.hotwords import hotword_hits
from shared.job_waiting import LOADING_SPEAKER_MODEL, job_waiting_for
from shared.schemas import JobOptions
from shared.storage import StorageKeyNotFound
from shared.transcript import Transcript
from worker.engines.base import TranscriptionOptions
from worker.services.audio_charges import charge_decoded_audio
from worker.services.completion import FinishContext, Labels, fail, finish, note_canceled, store_transcript
from worker.services.metrics import record_job_started
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


def run_transcription(runtime: WorkerRuntime, job_id: str, celery: Celery | None = None) -> JobStatus | None:
    """Run job `job_id` to a final status; returns it, or None when there was nothing to do.

    Transient errors (storage or database down) propagate so the task layer can retry.
    `celery`: sends the job's webhook tasks at its end (None: the reconciler's sweep does).
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
    ctx = FinishContext.of(runtime, celery)
    labels = Labels(queue=job.queue, mode=job.mode)
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
        note_canceled(ctx, job_id, labels)
        return JobStatus.CANCELED
    except StorageKeyNotFound:
        if runtime.jobs.get(job_id).status == JobStatus.CANCELED:
            note_canceled(ctx, job_id, labels)
            return JobStatus.CANCELED
        fail(ctx, job_id, "the uploaded audio is missing from storage", labels=labels)
        return JobStatus.FAILED
    except AudioTooLongError as exc:
        _fail_too_long(runtime, ctx, job, exc)
        return JobStatus.FAILED
    except OddAsrError as exc:
        if exc.transient:
            raise
        fail(ctx, job_id, exc.message, labels=labels)
        return JobStatus.FAILED
    key = store_transcript(ctx, job_id, transcript)
    processing_s = time.monotonic() - started_s
    # A loss to a cancel deletes the transcript just stored; a loss to another attempt that
    # won (a job sent again while this one still ran) keeps it: same key, its copy.
    return finish(
        ctx, job_id, JobStatus.SUCCEEDED, labels=labels, stored_keys=[key], metric_audio_s=transcript.duration_s,
        metric_processing_s=processing_s, rate_queue=True, transcript_key=key, progress=1.0,
        audio_duration_s=transcript.duration_s, processing_s=processing_s,
        hotword_hits=hotword_hits(transcript, options.hotwords),  # once here: GET only reads them
    ).status


def _fail_too_long(runtime: WorkerRuntime, ctx: FinishContext, job: Job, exc: AudioTooLongError) -> None:
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
    fail(ctx, job.id, reason, labels=Labels(queue=job.queue, mode=job.mode), audio_duration_s=exc.measured_s)


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
