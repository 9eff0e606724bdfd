"""The form of OpenAI's `POST /v1/audio/transcriptions`, checked in the order OpenAI's SDKs
have always seen, with OpenAI's field name (`param`) in each refusal."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from api.options import MAX_HOTWORDS_CHARS, check_hotwords, parse_language
from api.request_models.base import RequestModel
from api.request_models.job_form import CALLBACK_DESCRIPTION, LANGUAGE_DESCRIPTION
from shared.engines_catalog import OPENAI_MODEL_ALIAS
from shared.errors import BadRequestError

#: OpenAI response_format -> our renderer.
RESPONSE_FORMATS = {"json": "openai_json", "text": "text", "srt": "srt", "vtt": "vtt",
                    "verbose_json": "verbose_json"}
#: The validation context key of the model ids the server runs.
KNOWN_MODELS = "known_models"


class TranscriptionForm(RequestModel):
    """The audio itself is the file part `file`, received by api/uploads.py."""

    model: str = Field(OPENAI_MODEL_ALIAS, validate_default=True, description="One of the ids GET /v1/models lists.")
    response_format: Literal[tuple(RESPONSE_FORMATS)] = "json"  # type: ignore[valid-type]
    language: str | None = Field(None, description=LANGUAGE_DESCRIPTION)
    prompt: str = Field("", max_length=MAX_HOTWORDS_CHARS, description="Used as a hotword hint.")
    timestamp_granularities: list[str] = Field(
        [], alias="timestamp_granularities[]",
        json_schema_extra={"items": {"type": "string", "enum": ["segment", "word"]}},
        description="`word` asks for word timestamps; any other value is ignored.")
    callback_url: str | None = Field(None, description=CALLBACK_DESCRIPTION)

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, raw: Any, info: ValidationInfo) -> Any:
        if info.context is not None and raw not in info.context[KNOWN_MODELS]:
            raise BadRequestError(f"unknown model {raw!r}: GET /v1/models lists the models this server runs",
                                  param="model")
        return raw

    @field_validator("response_format", mode="before")
    @classmethod
    def _response_format(cls, raw: Any) -> Any:
        if raw not in RESPONSE_FORMATS:
            raise BadRequestError(f"unknown response_format {raw!r}: use one of {', '.join(RESPONSE_FORMATS)}",
                                  param="response_format")
        return raw

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, raw: Any) -> str | None:
        return parse_language(raw)

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, raw: Any) -> str:
        prompt = (raw or "").strip()
        check_hotwords([prompt] if prompt else [], field="prompt")
        return prompt

    @property
    def hotwords(self) -> list[str]:
        return [self.prompt] if self.prompt else []
