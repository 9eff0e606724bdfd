"""The language codes each engine accepts, so the API refuses a bad `language` at submission.

The API must not import faster-whisper (the API image carries no engine), so Whisper's codes
are copied here from `faster_whisper.tokenizer._LANGUAGE_CODES`; a worker-side test keeps the
copy equal to the installed library's list.
"""

from __future__ import annotations

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
#: FunASR's Paraformer models transcribe Mandarin with English words mixed in; the configured
#: `funasr_language` (a model for another language) is accepted as well.
FUNASR_LANGUAGES: tuple[str, ...] = ("zh", "en")


def supported_languages(engine: str, whisper_model: str, funasr_language: str) -> tuple[str, ...]:
    """The codes a job's `language` may take with this engine and model."""
    if engine == "funasr":
        extra = (funasr_language,) if funasr_language and funasr_language not in FUNASR_LANGUAGES else ()
        return FUNASR_LANGUAGES + extra
    if whisper_model.rstrip("/").endswith(".en"):
        return WHISPER_ENGLISH_ONLY
    return WHISPER_LANGUAGES
