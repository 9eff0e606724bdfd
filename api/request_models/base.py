"""The base of every request model, and the translation of pydantic's errors into ours."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import BadRequestError


class RequestModel(BaseModel):
    """A request's fields; unknown fields are ignored, as the routes always did."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    @classmethod
    def parse(cls, data: Mapping[str, Any], context: dict[str, Any] | None = None) -> Self:
        """The validated request, or a 400 naming the field at fault. Most fields raise our own
        message in their `before` validator; this translates what pydantic itself refuses.
        `context`: what a check needs from the server (validators read `info.context`)."""
        try:
            return cls.model_validate(dict(data), context=context)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(part) for part in first["loc"]) or "body"
            raise BadRequestError(f"'{field}': {first['msg']}", param=field) from None
