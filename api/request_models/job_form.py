"""The form of `POST /v1/jobs` and of OddASR's `/v1/asr` (whose /file and /sentence variants
fix the mode): the job's mode and options, checked in the order clients have always seen."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from api.options import (
    MAX_HOTWORDS,
    MAX_HOTWORDS_CHARS,
    MAX_SPEAKERS,
    MODES,
    check_supported,
    parse_bool,
    parse_hotwords,
    parse_language,
    parse_mode,
    parse_optional_bool,
    parse_output_format,
    parse_speaker_count,
)
from api.request_models.base import RequestModel
from shared.config import Settings
from shared.errors import BadRequestError
from shared.render import RENDERERS
from shared.schemas import JobOptions

Mode = Literal[(*MODES, "")]  # type: ignore[valid-type]
OutputFormat = Literal[(*sorted(RENDERERS), "")]  # type: ignore[valid-type]

_SWITCH = "true or false (also 1/0, yes/no, on/off)."
_SPEAKERS = Annotated[int | None, Field(ge=1, le=MAX_SPEAKERS, description="Needs diarize=true.")]
CALLBACK_DESCRIPTION = ("Where a signed webhook (Standard Webhooks) is POSTed when the job ends; 400 when the server"
                        " has no signing secret or the URL is not one it may call.")
LANGUAGE_DESCRIPTION = "A language code such as `en` or `zh`, or `auto` (the default)."
AUDIO_DESCRIPTION = ("The audio file (WAV, FLAC, MP3, Ogg/Opus, M4A, WebM, ...): probed before anything is"
                     " stored, so bytes that are not audio answer 415 and broken or too long audio 422.")


class JobForm(RequestModel):
    """Fields in the order they are checked, so the first fault named is the one it always was.
    The audio file itself is a file part, received by api/uploads.py; `callback_url` and the
    engine's capabilities are checked against the server's settings by the route."""

    mode: Mode = Field("file", description="`sentence`: a short utterance on the low-latency queue. Empty: the"
                                           " default.")
    output_format: OutputFormat = Field("txt", description="Empty: the default.")
    diarize: bool = Field(False, description=_SWITCH)
    min_speakers: _SPEAKERS = None
    max_speakers: _SPEAKERS = None
    identify_speakers: bool = Field(False, validate_default=True, description="Name diarized speakers after the"
                                    " key's enrolled voices (POST /v1/speakers). Needs diarize=true.")
    language: str | None = Field(None, description=LANGUAGE_DESCRIPTION)
    hotwords: str = Field("", max_length=MAX_HOTWORDS_CHARS, description="Words to favour, separated by spaces,"
                          f" commas or newlines (at most {MAX_HOTWORDS}).")
    hotword: str = Field("", max_length=MAX_HOTWORDS_CHARS, validate_default=True,
                         description="An alias of `hotwords`, used when `hotwords` is empty.")
    word_timestamps: bool = Field(False, description=_SWITCH)
    mask_sensitive_words: bool = Field(True, description="Mask the server's sensitive words; only an"
                                         " admin key may send false (403 otherwise). " + _SWITCH)
    use_itn: bool | None = Field(None, description="Inverse text normalization (`twenty five` -> `25`); empty: the"
                                                   " server's default. 422 where the engine cannot honour it.")
    hotword_set: str | None = Field(None, description="A hotword set of the key (GET /v1/hotwords), `default` (the"
                                                      " server's, also used when none is named) or `none`; an unknown"
                                                      " one answers 400.")
    callback_url: str | None = Field(None, description=CALLBACK_DESCRIPTION)
    webhook_url: str | None = Field(None, description="An alias of `callback_url`.")

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, raw: Any) -> str:
        return parse_mode(raw)

    @field_validator("output_format", mode="before")
    @classmethod
    def _output_format(cls, raw: Any) -> str:
        return parse_output_format(raw)

    @field_validator("diarize", "word_timestamps", "mask_sensitive_words", mode="before")
    @classmethod
    def _switch(cls, raw: Any, info: ValidationInfo) -> bool:
        assert info.field_name is not None
        return parse_bool(info.field_name, raw, default=cls.model_fields[info.field_name].default)

    @field_validator("use_itn", mode="before")
    @classmethod
    def _optional_switch(cls, raw: Any) -> bool | None:
        return parse_optional_bool("use_itn", raw, default=None)

    @field_validator("min_speakers", "max_speakers", mode="before")
    @classmethod
    def _speaker_count(cls, raw: Any, info: ValidationInfo) -> int | None:
        assert info.field_name is not None
        return parse_speaker_count(info.field_name, raw)

    @field_validator("identify_speakers", mode="before")
    @classmethod
    def _identify_speakers(cls, raw: Any, info: ValidationInfo) -> bool:
        """Also the speaker counts' own checks, which need `diarize`: they come first."""
        diarize, low, high = (info.data.get(name) for name in ("diarize", "min_speakers", "max_speakers"))
        if (low or high) and not diarize:
            raise BadRequestError("min_speakers and max_speakers need diarize=true")
        if low and high and low > high:
            raise BadRequestError("min_speakers is larger than max_speakers")
        identify = raw if isinstance(raw, bool) else parse_bool("identify_speakers", raw)
        if identify and not diarize:
            raise BadRequestError("identify_speakers names the speakers that diarization finds: it needs diarize=true")
        return identify

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, raw: Any) -> str | None:
        return parse_language(raw)

    @field_validator("hotwords", mode="before")
    @classmethod
    def _hotwords(cls, raw: Any) -> Any:
        parse_hotwords(raw)  # the caps, with their own messages
        return raw

    @field_validator("hotword", mode="before")
    @classmethod
    def _hotword_alias(cls, raw: Any, info: ValidationInfo) -> Any:
        """The alias counts only when `hotwords` is empty (then with the same caps)."""
        if info.data.get("hotwords"):
            return ""
        parse_hotwords(raw)
        return raw

    def job_options(self, settings: Settings) -> JobOptions:
        """The options of the job, refused (422) where the configured engine cannot honour them."""
        options = JobOptions(
            language=self.language, hotwords=parse_hotwords(self.hotwords or self.hotword), diarize=self.diarize,
            output_format=self.output_format, word_timestamps=self.word_timestamps, min_speakers=self.min_speakers,
            max_speakers=self.max_speakers, identify_speakers=self.identify_speakers,
            mask_sensitive_words=self.mask_sensitive_words,
            use_itn=settings.use_itn if self.use_itn is None else self.use_itn,
        )
        check_supported(options, settings)
        return options


def options_from_form(form: Mapping[str, Any], settings: Settings) -> tuple[str, JobOptions]:
    """The mode and options of a /v1/jobs or /v1/asr request."""
    job_form = JobForm.parse({name: form.get(name) for name in JobForm.model_fields if form.get(name) is not None})
    return job_form.mode, job_form.job_options(settings)
