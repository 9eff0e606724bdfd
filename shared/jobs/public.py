"""A job's public JSON: what `GET /v1/jobs/{id}` shows and what its webhook events carry,
built through the models in `shared.jobs.public_models` (which the OpenAPI document's
schemas are generated from).

One shape of a transcript for both, so a client reads the same fields from a poll and from
a webhook (speaker names included)."""

from __future__ import annotations

from typing import Any

from shared.db.models import Job
from shared.db.utc import iso
from shared.jobs import public_models as out
from shared.transcript import Segment, Transcript


def job_model(job: Job, transcript: Transcript | None = None,
              hotword_hits: list[dict[str, object]] | None = None, **extra: Any) -> out.Job:
    """The job's public model; with its transcript, a `result` that holds `hotword_hits` as
    given (`api.job_hotword_hits`: never matched here). `extra`: the fields only a single
    job's answer has (queue position and estimates, what it waits for, reprocessing)."""
    if transcript is not None:
        extra["result"] = out.TranscriptResult(**_transcript_fields(transcript), hotword_hits=hotword_hits or [])
    return out.Job(
        id=job.id, status=job.status, mode=job.mode, queue=job.queue, options=job.options,
        filename=job.audio_filename, audio_size_bytes=job.audio_size_bytes, audio_duration_s=job.audio_duration_s,
        progress=round(job.progress or 0.0, 3), attempts=job.attempts, engine=job.engine, worker=job.worker,
        processing_s=job.processing_s, error=job.error, created_at=iso(job.created_at),
        started_at=iso(job.started_at), finished_at=iso(job.finished_at), data_expired_at=iso(job.data_expired_at),
        callback_url=job.callback_url, api_key_id=job.api_key_id,
        links=out.JobLinks(self=f"/v1/jobs/{job.id}", transcript=f"/v1/jobs/{job.id}/transcript",
                           webhooks=f"/v1/jobs/{job.id}/webhooks"),
        **extra)


def job_to_dict(job: Job, transcript: Transcript | None = None,
                hotword_hits: list[dict[str, object]] | None = None) -> dict[str, Any]:
    """The job's public JSON (see `job_model`)."""
    return job_model(job, transcript, hotword_hits).public()


def job_event_data(job: Job, link_base_url: str) -> dict[str, Any]:
    """The job part of a webhook event: its outcome and absolute links (the receiver is not
    the API's own page, so a relative link would not do)."""
    base = link_base_url.rstrip("/")
    return out.JobEventData(
        job_id=job.id, status=job.status, mode=job.mode, error=job.error, audio_duration_s=job.audio_duration_s,
        processing_s=job.processing_s, created_at=iso(job.created_at), started_at=iso(job.started_at),
        finished_at=iso(job.finished_at),
        links=out.JobEventLinks(job=f"{base}/v1/jobs/{job.id}",
                                transcript=f"{base}/v1/jobs/{job.id}/transcript?format=json"),
    ).public()


def transcript_model(transcript: Transcript) -> out.TranscriptResult:
    return out.TranscriptResult(**_transcript_fields(transcript))


def transcript_to_dict(transcript: Transcript) -> dict[str, Any]:
    return transcript_model(transcript).public()


def segment_to_dict(segment: Segment) -> dict[str, Any]:
    return _segment_model(segment).public()


def _transcript_fields(transcript: Transcript) -> dict[str, Any]:
    return {"text": transcript.text, "language": transcript.language,
            "segments": [_segment_model(s) for s in transcript.segments]}


def _segment_model(segment: Segment) -> out.SegmentOut:
    """A segment; the enrolled name and its similarity only where the job asked for names."""
    names = ({"speaker_name": segment.speaker_name, "speaker_similarity": segment.speaker_similarity}
             if segment.speaker_similarity is not None else {})
    return out.SegmentOut(start=segment.start_s, end=segment.end_s, text=segment.text, speaker=segment.speaker,
                          **names)
