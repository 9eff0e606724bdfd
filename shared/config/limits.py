"""What one request may send and how long the API waits for it: sizes, rates, durations."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RequestLimitSettings(BaseModel):
    """Upload and request-body limits, audio lengths, and the API's own waits."""

    max_upload_bytes: int = 1024 * 1024 * 1024
    #: The request body of every route that takes no audio upload (JSON, hotword sets): read
    #: at most this far, chunked or not; past it, 413. Upload routes take `max_upload_bytes`.
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: A request body must keep arriving: no read may wait longer than this ...
    upload_idle_timeout_s: float = 30.0
    #: ... and after the grace period it must average at least this rate, so a client that
    #: trickles a byte a second cannot hold a connection (and a temp file) for hours.
    upload_min_bytes_per_s: int = 16 * 1024
    upload_grace_s: float = 30.0
    #: Request bodies one client address may be sending at once (0: no limit); past it, 429.
    max_concurrent_uploads_per_client: int = 16
    max_audio_duration_s: float = 4 * 3600.0
    max_sentence_duration_s: float = 60.0
    #: How long the synchronous OddASR/OpenAI endpoints wait before answering 504 + job id.
    sync_wait_timeout_s: float = 300.0
    enqueue_timeout_s: float = 5.0
    #: Upload temp files untouched this long were left by a killed API process (a live upload
    #: writes as it streams; keep it above sync_wait_timeout_s).
    stale_upload_after_s: float = 3600.0

    def max_duration_s_for(self, mode: str) -> float:
        """The audio length a job of `mode` may have: the API refuses longer uploads, and the
        worker stops decoding there whatever the file claimed."""
        return self.max_sentence_duration_s if mode == "sentence" else self.max_audio_duration_s
