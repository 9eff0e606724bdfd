"""Storage keys of a job's objects: derived from the job id, never from a client's file name,
so a rerun overwrites what an earlier attempt stored instead of adding to it."""

from __future__ import annotations


def audio_key(job_id: str) -> str:
    """The job's audio: an upload, a live session's recording, or a reprocessing's copy."""
    return f"audio/{job_id}"


def transcript_key(job_id: str) -> str:
    """The job's stored `Transcript` (JSON)."""
    return f"transcripts/{job_id}.json"
