"""The JSON bodies: a new API key (`POST /v1/keys`) and a hotword set (`PUT /v1/hotwords/{name}`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from api.request_models.base import RequestModel
from shared.db.api_keys import MAX_LIMIT_VALUE, MAX_NAME_CHARS, KeyLimits
from shared.errors import BadRequestError
from shared.hotwords import DEFAULT_WEIGHT, MAX_ENTRIES, MAX_ENTRY_CHARS, MAX_WEIGHT, HotwordEntry, entries_from_json

_LIMIT_DESCRIPTION = "0: no limit; null: the server's default"


class NewApiKey(RequestModel):
    """Checked as strictly as JSON allows: `"true"` is not a boolean, `1.5` not a limit."""

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    admin: bool = False
    requests_per_minute: int | None = Field(None, ge=0, le=MAX_LIMIT_VALUE, description=_LIMIT_DESCRIPTION)
    max_jobs_in_flight: int | None = Field(None, ge=0, le=MAX_LIMIT_VALUE, description=_LIMIT_DESCRIPTION)
    audio_seconds_per_day: int | None = Field(None, ge=0, le=MAX_LIMIT_VALUE, description=_LIMIT_DESCRIPTION)

    @model_validator(mode="before")
    @classmethod
    def _name_first(cls, body: Any) -> Any:
        """A missing name is refused before pydantic's own "field required"."""
        if not isinstance(body.get("name"), str):
            raise BadRequestError(f"'name' is required: a string of 1 to {MAX_NAME_CHARS} characters")
        return body

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, raw: str) -> str:
        if not raw or len(raw) > MAX_NAME_CHARS:
            raise BadRequestError(f"a key needs a name of 1 to {MAX_NAME_CHARS} characters")
        return raw

    @field_validator("admin", mode="before")
    @classmethod
    def _admin(cls, raw: Any) -> Any:
        if not isinstance(raw, bool):
            raise BadRequestError("'admin' must be true or false")
        return raw

    @field_validator("requests_per_minute", "max_jobs_in_flight", "audio_seconds_per_day", mode="before")
    @classmethod
    def _limit(cls, raw: Any, info: ValidationInfo) -> Any:
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            raise BadRequestError(f"'{info.field_name}' must be a whole number, 0 or more (0: no limit), or null"
                                  " (the default)")
        if raw > MAX_LIMIT_VALUE:
            raise BadRequestError(f"{info.field_name} must be between 0 and {MAX_LIMIT_VALUE}")
        return raw

    @property
    def limits(self) -> KeyLimits:
        return KeyLimits(requests_per_minute=self.requests_per_minute, max_jobs_in_flight=self.max_jobs_in_flight,
                         audio_seconds_per_day=self.audio_seconds_per_day)


class Hotword(BaseModel):
    """One word of a set."""

    word: str = Field(min_length=1, max_length=MAX_ENTRY_CHARS)
    weight: int = Field(DEFAULT_WEIGHT, ge=0, le=MAX_WEIGHT, description="Heavier words come first.")


class HotwordSetBody(RequestModel):
    """The JSON form of a set; the route also takes the original's file format as text."""

    words: list[Hotword | Annotated[str, StringConstraints(min_length=1)]] = Field(min_length=1,
                                                                                 max_length=MAX_ENTRIES)

    @field_validator("words", mode="before")
    @classmethod
    def _words(cls, raw: Any) -> list[dict[str, Any]]:
        """Checked like the file format (shared.hotwords), with its messages."""
        entries = entries_from_json(raw)
        if not entries:
            raise BadRequestError("the set holds no hotwords")
        return [{"word": entry.word, "weight": entry.weight} for entry in entries]

    @property
    def entries(self) -> list[HotwordEntry]:
        return [HotwordEntry(word.word, word.weight) for word in self.words if isinstance(word, Hotword)]
