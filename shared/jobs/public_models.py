"""The models of a job's public JSON: they build what the API answers and what webhooks carry
(`shared.jobs.public`), and the OpenAPI document's schemas are generated from them
(api/openapi), so the contract and the answers cannot drift.

Conventions, read by api/openapi/response_schemas.py:
- a field without a default is always present (required in the schema), null where its type says;
- a field `X | Omitted = None` is left out of the JSON unless it was given (dumped with
  `exclude_unset`), and the schema shows it as X, not required.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, NonNegativeInt, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from shared.db.models import JobStatus
from shared.db.repository import STREAM_MODE
from shared.jobs.rows import UPLOAD_MODES
from shared.reprocess import MODES as REPROCESS_MODES
from shared.reprocess import NONE as NO_REPROCESSING
from shared.reprocess import STAGES
from shared.schemas import JobOptions

#: A field left out of the JSON unless given; not in its schema's type.
Omitted = SkipJsonSchema[None]
#: A time as every public JSON writes one (`shared.db.utc.iso`: ISO 8601 with its zone).
IsoTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
#: The options the job was made with, as stored: a client's `JobOptions` (plus a live session's
#: or a reprocessing's own), shown as stored, never re-validated.
StoredOptions = Annotated[dict[str, Any], WithJsonSchema({
    **JobOptions.model_json_schema(mode="serialization"), "additionalProperties": True,
    "description": "What the client asked for. A live session's job also records its `protocol`,"
                   " `sample_rate_hz` and `reprocess`; a reprocessing job its `source_job_id`."})]
JobMode = Literal[UPLOAD_MODES + (STREAM_MODE,)]  # type: ignore[valid-type]
ReprocessMode = Literal[tuple(m for m in REPROCESS_MODES if m != NO_REPROCESSING)]  # type: ignore[valid-type]
Stage = Literal[STAGES]  # type: ignore[valid-type]


class PublicModel(BaseModel):
    """Dumps to the public JSON: set fields only, so an omitted field stays out."""

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class SegmentOut(PublicModel):
    start: float
    end: float
    text: str
    speaker: int | None
    speaker_name: str | None | Omitted = Field(
        None, description="identify_speakers: the enrolled name, null below the match threshold.")
    speaker_similarity: float | Omitted = Field(
        None, description="identify_speakers: cosine similarity to the best enrolled voiceprint.")


class HotwordTime(PublicModel):
    start: float
    end: float


class HotwordHit(PublicModel):
    word: str
    count: int = Field(ge=1)
    times: list[HotwordTime]


class TranscriptResult(PublicModel):
    text: str
    language: str | None
    segments: list[SegmentOut]
    hotword_hits: list[HotwordHit] | Omitted = Field(
        None, description="Where the job's hotwords turned up: found once, when the job ended (a live session"
                          " still running: its sentences so far).")


class JobLinks(PublicModel):
    self: str
    transcript: str
    webhooks: str


class ReprocessingLinks(PublicModel):
    job: str
    transcript: str


class Reprocessing(PublicModel):
    """The file job made from a live session's recording, with its transcript once it has one."""

    mode: ReprocessMode
    job_id: str
    status: JobStatus | None
    error: str | None
    links: ReprocessingLinks
    result: TranscriptResult | Omitted = None


class Job(PublicModel):
    id: str
    status: JobStatus
    mode: JobMode
    queue: str
    options: StoredOptions
    filename: str | None
    audio_size_bytes: int | None
    audio_duration_s: float | None
    progress: float = Field(ge=0, le=1)
    attempts: int = Field(ge=0)
    engine: str | None
    worker: str | None
    processing_s: float | None
    error: str | None
    created_at: IsoTime
    started_at: IsoTime | None
    finished_at: IsoTime | None
    data_expired_at: IsoTime | None
    callback_url: str | None
    api_key_id: str | None = Field(description="The key that created the job; null with auth off.")
    links: JobLinks
    result: TranscriptResult | Omitted = None
    # GET /v1/jobs/{id} only:
    queue_position: NonNegativeInt | None | Omitted = Field(
        None, description="While queued: jobs ahead of it (0: next).")
    estimated_start_s: float | None | Omitted = Field(
        None, description="While queued: seconds until it should start.")
    estimated_finish_s: float | None | Omitted = Field(
        None, description="While queued or running: seconds until it should finish.")
    waiting_for: str | None | Omitted = Field(
        None, description="While running: what the job waits for, in words (the first diarize job of a worker"
                          " loads the speaker model).")
    stage: Stage | Omitted = Field(
        None, description="Only for a live session that asked for reprocessing: where it stands.")
    reprocessed: Reprocessing | Omitted = None


class JobList(PublicModel):
    jobs: list[Job]
    total: int = Field(ge=0)
    limit: int
    offset: int
    next: str | None = Field(description="The next page's URL; null on the last page.")


class JobEventLinks(PublicModel):
    job: str
    transcript: str


class JobEventData(PublicModel):
    """The job part of a webhook event (not an HTTP answer: a receiver's body)."""

    job_id: str
    status: JobStatus
    mode: JobMode
    error: str | None
    audio_duration_s: float | None
    processing_s: float | None
    created_at: IsoTime
    started_at: IsoTime | None
    finished_at: IsoTime | None
    links: JobEventLinks
