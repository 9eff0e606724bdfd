"""A key's hotword sets and enrolled speakers as their routes show them."""

from __future__ import annotations

from pydantic import Field

from shared.db.models import Speaker as SpeakerRow
from shared.db.models import SpeakerStatus
from shared.db.utc import iso
from shared.jobs.public_models import IsoTime, Omitted, PublicModel


class Deleted(PublicModel):
    deleted: str


class HotwordOut(PublicModel):
    word: str
    weight: int


class HotwordSetSummary(PublicModel):
    name: str
    version: str
    count: int = Field(ge=0)
    created_at: IsoTime | None | Omitted = None
    updated_at: IsoTime | None | Omitted = None
    read_only: bool | Omitted = Field(None, description="The server's default set (its hotword file).")
    source: str | Omitted = None


class HotwordSet(HotwordSetSummary):
    words: list[HotwordOut]


class HotwordSetList(PublicModel):
    sets: list[HotwordSetSummary]
    default: HotwordSetSummary | None


class SpeakerLinks(PublicModel):
    self: str


class Speaker(PublicModel):
    """A speaker without its embedding: a voiceprint is biometric data and no client needs it."""

    id: str
    name: str
    status: SpeakerStatus
    error: str | None = Field(description="Why the enrollment failed.")
    embedding_model: str | None = Field(description="`resemblyzer-ge2e` or `campplus`: jobs compare only"
                                                    " voiceprints of their engine's model.")
    audio_duration_s: float
    created_at: IsoTime | None
    updated_at: IsoTime | None
    links: SpeakerLinks

    @classmethod
    def of(cls, row: SpeakerRow, *, error: str | None = None) -> Speaker:
        return cls(id=row.id, name=row.name, status=row.status, error=error or row.error,
                   embedding_model=row.embedding_model, audio_duration_s=round(row.audio_duration_s or 0.0, 3),
                   created_at=iso(row.created_at), updated_at=iso(row.updated_at),
                   links=SpeakerLinks(self=f"/v1/speakers/{row.id}"))


class SpeakerList(PublicModel):
    speakers: list[Speaker]
