"""A live session that becomes a better job: its recording transcribed again as a file.

At the end of a session whose client asked for it (start option `reprocess`), the stream
worker queues a file job over the session's recording: `offline` (the file pipeline: full
beam, whole-file context) or `diarize` (the same, with speaker labels). The file job's id is
derived from the session's, so the API finds it from the session without a column or a
lookup table, and a repeated attempt (a worker retrying its finalisation) cannot make two.
"""

from __future__ import annotations

import uuid

NONE = "none"
OFFLINE = "offline"
DIARIZE = "diarize"
MODES = (NONE, OFFLINE, DIARIZE)
#: Every word `stage_of` answers (the job's `stage` in its public JSON).
STAGES = ("live", "ended", "reprocess_pending", "reprocessing", "reprocessed", "reprocess_failed")

#: The namespace of the derived ids (a fixed random UUID).
_NAMESPACE = uuid.UUID("5b0d6c0e-9f6a-4a49-9a4e-2f1c3f1d7e21")


def reprocess_job_id(session_job_id: str) -> str:
    return uuid.uuid5(_NAMESPACE, session_job_id).hex


def stage_of(session_status: str, reprocess_status: str | None) -> str:
    """Where a session that asked for reprocessing stands, in one word for clients."""
    if session_status in ("queued", "running"):
        return "live"
    if session_status != "succeeded":
        return "ended"
    if reprocess_status is None:
        return "reprocess_pending"
    return {"queued": "reprocessing", "running": "reprocessing", "succeeded": "reprocessed"}.get(
        reprocess_status, "reprocess_failed")
