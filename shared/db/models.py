"""SQLAlchemy models: the database is the source of truth for jobs."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db.clock import db_now
from shared.db.utc import UtcDateTime


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})


class Job(Base):
    """One transcription request, from upload to result."""

    __tablename__ = "jobs"
    #: `updated_at` is computed by the database: read it back with the insert, so a row handed
    #: on after its session closed still has it.
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True, default=JobStatus.QUEUED)
    mode: Mapped[str] = mapped_column(String(16), default="file")
    queue: Mapped[str] = mapped_column(String(32), default="")
    #: Validated request options (language, hotwords, diarize, output_format, ...).
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    audio_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: The client's file name, for display only: storage keys never derive from it.
    audio_filename: Mapped[str] = mapped_column(String(255), default="")
    audio_size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    audio_duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    transcript_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Fraction of the audio decoded so far, 0..1, for progress bars.
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    #: How many times a worker started this job (more than 1 after a redelivery).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: "hostname:pid" of the worker process of the latest attempt.
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    engine: Mapped[str | None] = mapped_column(String(64), nullable=True)
    processing_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: The job's lease: every sign of life touches it, on the database's clock (`db_now`), and the
    #: reconciler judges staleness on that same clock, never a host's.
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=db_now(), onupdate=db_now())
    #: Where the final status is POSTed (a signed webhook); None: the client polls.
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: When retention deleted the job's audio and transcript (the row and status stay).
    data_expired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: The API key that created the job (its tenant); None when auth is off. No foreign key:
    #: a revoked key's jobs stay, still owned by it.
    api_key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: Where the job's hotwords turned up (`shared.hotwords.hotword_hits`), computed once by the
    #: worker that stored the transcript; NULL until then, and for jobs that ended before
    #: migration 0009 until their first read (the API computes and stores them then).
    hotword_hits: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    #: The live session a reprocessing job was made from (also in its options, for clients): a
    #: column so the reconciler's sweep finds sessions still owed theirs in SQL (migration 0010).
    source_job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)

    __table_args__ = (
        Index("ix_jobs_api_key_id_created_at", "api_key_id", "created_at"),
        Index("ix_jobs_api_key_id_status", "api_key_id", "status"),
        # Queue position and backlog from the index alone (migration 0007), and filtered lists.
        Index("ix_jobs_queue_status_created_at", "queue", "status", "created_at", "id", "audio_duration_s"),
        Index("ix_jobs_status_created_at", "status", "created_at", "id"),
        # The reprocessing sweep: recently ended sessions, and whether each has its file job (0010).
        Index("ix_jobs_mode_status_finished_at", "mode", "status", "finished_at"),
        Index("ix_jobs_source_job_id", "source_job_id"),
    )


class ApiKey(Base):
    """A client's key. Only a keyed hash of its secret is stored; the key itself is shown
    once, at creation. The limits are per key; None means no limit."""

    __tablename__ = "api_keys"

    #: The short id, part of the key itself and what logs show instead of the key.
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    #: HMAC-SHA256 (hex) of the key's secret part under the server's key-hash secret.
    secret_hash: Mapped[str] = mapped_column(String(64))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_jobs_in_flight: Mapped[int | None] = mapped_column(Integer, nullable=True)
    audio_seconds_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class StreamSegment(Base):
    """A final sentence of a live session, written as soon as it is produced, so a session
    that dies (worker killed, API killed) still has every sentence it finished."""

    __tablename__ = "stream_segments"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    start_ms: Mapped[int] = mapped_column(Integer)
    end_ms: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    #: The sentence's words (`shared.transcript.Word` as dicts) and its speaker (sessions that
    #: asked for speakers), as the client was sent them; None in rows from before they existed.
    words: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    speaker: Mapped[int | None] = mapped_column(Integer, nullable=True)
    speaker_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    speaker_similarity: Mapped[float | None] = mapped_column(Float, nullable=True)


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    #: Every attempt of the retry schedule failed.
    FAILED = "failed"
    #: The receiver answered 410 Gone: no more attempts.
    GONE = "gone"


class WebhookDelivery(Base):
    """One webhook event of a job (the outbox): written in the transaction that writes the
    job's final status, so a crash between the status and the send loses nothing. Its id is
    the event's `webhook-id`, the same on every attempt and redelivery."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    #: job.succeeded, job.failed, job.canceled or stream.ended.
    event_type: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING, index=True)
    #: The body, fixed at the first attempt so every attempt sends the same bytes.
    payload: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Each attempt: {"at", "status_code", "error", "duration_ms"}.
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: Attempts since the event was (re)delivered: the position in the retry schedule.
    schedule_step: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, index=True)
    #: An attempt in flight holds the delivery until then (its sender may die mid-send).
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    lock_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)


class HotwordSet(Base):
    """A named list of hotwords with weights, owned by a key (None: auth off). Replacing it
    bumps `version`; a job copies the words it used and records the version."""

    __tablename__ = "hotword_sets"
    __table_args__ = (UniqueConstraint("owner_key_id", "name", name="uq_hotword_sets_owner_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_key_id: Mapped[str] = mapped_column(String(16), default="")
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: [{"word": ..., "weight": ...}, ...]
    entries: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class SpeakerStatus(enum.StrEnum):
    ENROLLING = "enrolling"
    READY = "ready"
    FAILED = "failed"


class Speaker(Base):
    """An enrolled voice (a voiceprint), owned by a key ('' when auth is off). The embedding is
    computed by a worker, because only workers hold speaker models; it records which model
    made it, since embeddings of different models are never compared."""

    __tablename__ = "speakers"
    __table_args__ = (Index("ix_speakers_owner_key_id_model", "owner_key_id", "embedding_model"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_key_id: Mapped[str] = mapped_column(String(16), default="")
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=SpeakerStatus.ENROLLING)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: `resemblyzer-ge2e` or `campplus`; None until the embedding exists.
    embedding_model: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: The L2-normalised mean of the parts' embeddings, as a list of floats.
    embedding: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    #: Storage keys of the uploaded parts; emptied once the worker has embedded them.
    audio_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    audio_duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)
