"""An API key as `/v1/keys` shows it: everything except its secret, which is never stored."""

from __future__ import annotations

from pydantic import Field

from shared.db.api_keys import MAX_LIMIT_VALUE
from shared.db.models import ApiKey as ApiKeyRow
from shared.db.utc import iso
from shared.jobs.public_models import IsoTime, PublicModel


class KeyLimits(PublicModel):
    """null: the server's default; 0: no limit."""

    requests_per_minute: int | None = Field(ge=0, le=MAX_LIMIT_VALUE)
    max_jobs_in_flight: int | None = Field(ge=0, le=MAX_LIMIT_VALUE)
    audio_seconds_per_day: int | None = Field(ge=0, le=MAX_LIMIT_VALUE)


LIMIT_FIELDS = tuple(KeyLimits.model_fields)


class ApiKey(PublicModel):
    id: str
    name: str
    admin: bool
    limits: KeyLimits
    created_at: IsoTime | None
    last_used_at: IsoTime | None
    revoked_at: IsoTime | None

    @classmethod
    def of(cls, key: ApiKeyRow) -> ApiKey:
        return cls(id=key.id, name=key.name, admin=key.is_admin,
                   limits=KeyLimits(**{name: getattr(key, name) for name in LIMIT_FIELDS}),
                   created_at=iso(key.created_at), last_used_at=iso(key.last_used_at), revoked_at=iso(key.revoked_at))


class ApiKeyCreated(ApiKey):
    key: str = Field(description="The key itself (`oddasr_sk_...`), shown this once only.")


class ApiKeyList(PublicModel):
    keys: list[ApiKey]
