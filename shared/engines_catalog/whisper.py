"""Whisper through faster-whisper as the API knows it: languages, speaker labels, ITN, models.

The API must not import faster-whisper (the API image carries no engine), so Whisper's codes
are copied here from `faster_whisper.tokenizer._LANGUAGE_CODES`; a worker-side test keeps the
copy equal to the installed library's list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.engines_catalog.descriptor import EngineDescriptor, Itn
from shared.engines_catalog.moonshine import MOONSHINE
from shared.settings_check import whisper_model_problem

if TYPE_CHECKING:
    from shared.config import Settings

WHISPER_LANGUAGES: tuple[str, ...] = (
    "af", "am", "ar", "as", "az", "ba", "be", "bg", "bn", "bo", "br", "bs", "ca", "cs", "cy", "da", "de", "el",
    "en", "es", "et", "eu", "fa", "fi", "fo", "fr", "gl", "gu", "ha", "haw", "he", "hi", "hr", "ht", "hu", "hy",
    "id", "is", "it", "ja", "jw", "ka", "kk", "km", "kn", "ko", "la", "lb", "ln", "lo", "lt", "lv", "mg", "mi",
    "mk", "ml", "mn", "mr", "ms", "mt", "my", "ne", "nl", "nn", "no", "oc", "pa", "pl", "ps", "pt", "ro", "ru",
    "sa", "sd", "si", "sk", "sl", "sn", "so", "sq", "sr", "su", "sv", "sw", "ta", "te", "tg", "th", "tk", "tl",
    "tr", "tt", "uk", "ur", "uz", "vi", "yi", "yo", "zh", "yue",
)
#: Whisper models trained on English only (`tiny.en`, `base.en`, ...).
WHISPER_ENGLISH_ONLY: tuple[str, ...] = ("en",)


class WhisperDescriptor(EngineDescriptor):
    name = "whisper"
    word_timestamps = True
    #: Under `stream_engine=auto`, English sessions without hotwords go to Moonshine tiny.
    auto_live_english = MOONSHINE
    live_needs_file_engine = "streams with the Whisper file engine's model"

    def languages(self, settings: Settings) -> tuple[str, ...]:
        if settings.whisper_model.rstrip("/").endswith(".en"):
            return WHISPER_ENGLISH_ONLY
        return WHISPER_LANGUAGES

    def describe(self, settings: Settings) -> str:
        return f"the whisper engine (model {settings.whisper_model})"

    def model_name(self, settings: Settings) -> str:
        return settings.whisper_model

    def supports_diarization(self, settings: Settings) -> bool:
        """Only where `enable_diarization` lets its workers load the speaker-embedding model."""
        return settings.enable_diarization

    def diarize_unavailable_reason(self) -> str:
        return "speaker labels (diarize) are disabled for the whisper engine: set ODDASR_ENABLE_DIARIZATION=true"

    def no_speaker_model_reason(self) -> str:
        return "this worker's whisper engine may not load its speaker model: set ODDASR_ENABLE_DIARIZATION=true"

    def itn(self, settings: Settings) -> Itn:
        """Whisper always writes numbers, dates and amounts in written form."""
        return Itn.ALWAYS

    def itn_refusal(self, settings: Settings, use_itn: bool | None) -> str | None:
        if use_itn is False:
            return ("the whisper engine always writes numbers, dates and amounts in written form: inverse text "
                    "normalization cannot be turned off (use_itn=false)")
        return None

    def settings_problem(self, settings: Settings) -> str | None:
        problem = whisper_model_problem(settings.whisper_model)
        return None if problem is None else f"whisper_model = {settings.whisper_model!r}: {problem}"


WHISPER = WhisperDescriptor()
