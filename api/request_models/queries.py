"""The query strings of the job routes: the list's filter and page, a transcript's format."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from api.options import parse_output_format
from api.request_models.base import RequestModel
from api.request_models.job_form import OutputFormat
from shared.db.models import JobStatus
from shared.errors import BadRequestError

MAX_PAGE_SIZE = 100
MAX_OFFSET = 10**9
_STATUSES = tuple(s.value for s in JobStatus)


class JobListQuery(RequestModel):
    """`GET /v1/jobs`: a key lists its own jobs; an admin key may name another's."""

    status: Literal[(*_STATUSES, "")] | None = Field(  # type: ignore[valid-type]
        None, description="Only jobs in it (empty: every status).")
    limit: int = Field(20, ge=1, le=MAX_PAGE_SIZE, description="Page size.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Jobs to skip.")
    api_key_id: str | None = Field(None, description="Admin keys only: the jobs of this key.")

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, raw: Any) -> Any:
        if raw and raw not in _STATUSES:
            raise BadRequestError(f"unknown status {raw!r}: use one of {', '.join(_STATUSES)}")
        return raw

    @field_validator("limit", "offset", mode="before")
    @classmethod
    def _whole_number(cls, raw: Any, info: ValidationInfo) -> int:
        name = info.field_name
        assert name is not None
        try:
            value = int(raw)
        except ValueError:
            raise BadRequestError(f"'{name}' must be an integer, not {raw!r}") from None
        bounds = cls.model_fields[name].metadata
        minimum = next(c.ge for c in bounds if hasattr(c, "ge"))
        maximum = next(c.le for c in bounds if hasattr(c, "le"))
        if not minimum <= value <= maximum:
            raise BadRequestError(f"'{name}' must be between {minimum} and {maximum}")
        return value


class TranscriptQuery(RequestModel):
    """`GET /v1/jobs/{job_id}/transcript`."""

    format: OutputFormat | None = Field(None, description="Default (or empty): the job's output_format.")

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, raw: Any) -> str | None:
        return parse_output_format(raw, field="format") if raw else None
