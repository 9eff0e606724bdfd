"""The form of `POST /v1/speakers`: the voice's name and whether to wait for the embedding
(the audio parts are file parts, received by api/uploads.py)."""

from __future__ import annotations

import unicodedata
from typing import Any

from pydantic import Field, field_validator, model_validator

from api.options import parse_bool
from api.request_models.base import RequestModel
from shared.errors import BadRequestError

MAX_NAME_CHARS = 64
#: Characters a name may not hold: they would break the spk, srt and vtt renderings.
_FORBIDDEN_NAME_CHARS = set("<>")


def checked_name(raw: str | None) -> str:
    name = " ".join((raw or "").split())
    if not name:
        raise BadRequestError("missing the speaker's 'name' (a form field beside the audio parts)")
    if len(name) > MAX_NAME_CHARS:
        raise BadRequestError(f"a speaker's name is at most {MAX_NAME_CHARS} characters")
    if any(c in _FORBIDDEN_NAME_CHARS or unicodedata.category(c).startswith("C") for c in name):
        raise BadRequestError("a speaker's name may not hold '<', '>' or control characters")
    return name


class SpeakerForm(RequestModel):
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS, description="The name transcripts show for this"
                      " voice (no `<`, `>` or control characters); runs of spaces count as one.")
    wait: bool = Field(True, description="false: answer 202 at once instead of waiting for the embedding.")

    @model_validator(mode="before")
    @classmethod
    def _name_first(cls, form: dict[str, Any]) -> dict[str, Any]:
        """A missing name is refused with our message, not pydantic's "field required"."""
        return {**form, "name": checked_name(form.get("name"))}

    @field_validator("wait", mode="before")
    @classmethod
    def _wait(cls, raw: Any) -> bool:
        return parse_bool("wait", raw, default=True)
