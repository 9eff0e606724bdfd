"""What each engine can do, known to the API without importing any engine code.

The API checks requests against this table so an option the configured engine cannot
honour is refused with a clear message instead of being silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineCapabilities:
    diarize: bool
    hotwords: bool
    word_timestamps: bool


ENGINE_CAPABILITIES: dict[str, EngineCapabilities] = {
    "whisper": EngineCapabilities(diarize=True, hotwords=True, word_timestamps=True),
    "funasr": EngineCapabilities(diarize=True, hotwords=True, word_timestamps=False),
}


def capabilities_for(engine: str, *, speaker_model: str = "", enable_diarization: bool = True) -> EngineCapabilities:
    """What the configured engine can do; FunASR labels speakers only with a speaker model,
    Whisper only where `enable_diarization` lets its workers load the speaker-embedding model."""
    base = ENGINE_CAPABILITIES[engine]
    if (engine == "funasr" and not speaker_model) or (engine == "whisper" and not enable_diarization):
        return EngineCapabilities(diarize=False, hotwords=base.hotwords, word_timestamps=base.word_timestamps)
    return base


def diarize_unavailable_reason(engine: str) -> str:
    """What an operator sets to get speaker labels from `engine`, for the refusal message."""
    if engine == "funasr":
        return "speaker labels (diarize) need a speaker model with the funasr engine: set ODDASR_FUNASR_SPK_MODEL"
    return f"speaker labels (diarize) are disabled for the {engine} engine: set ODDASR_ENABLE_DIARIZATION=true"


def model_ids(engine: str, model: str) -> list[str]:
    """Model ids listed by /v1/models: the configured one plus OpenAI's usual alias."""
    return [f"{engine}-{model}", "whisper-1"]


#: What the `use_itn` switch can do on an engine: Whisper always writes numbers, dates and
#: amounts in written form (no switch to turn off); FunASR's SenseVoice models take the switch;
#: its Paraformer models write spoken forms (no ITN to turn on).
ITN_ALWAYS, ITN_NEVER, ITN_SWITCH = "always", "never", "switch"


def itn_support(engine: str, funasr_asr_model: str = "") -> str:
    if engine == "whisper":
        return ITN_ALWAYS
    return ITN_SWITCH if "sensevoice" in funasr_asr_model.lower() else ITN_NEVER


def itn_refusal(engine: str, funasr_asr_model: str, use_itn: bool | None) -> str | None:
    """Why `use_itn` cannot be honoured by this engine and model, or None."""
    support = itn_support(engine, funasr_asr_model)
    if use_itn is False and support == ITN_ALWAYS:
        return ("the whisper engine always writes numbers, dates and amounts in written form: inverse text "
                "normalization cannot be turned off (use_itn=false)")
    if use_itn is True and support == ITN_NEVER:
        return (f"the configured FunASR model ({funasr_asr_model or 'paraformer'}) writes spoken forms and has no "
                "inverse text normalization: use_itn=true needs a SenseVoice model (funasr_asr_model)")
    return None


ENGLISH_CODES = frozenset({"en", "english"})


def is_english(language: str | None) -> bool:
    """True for `en`, `en-US`, `en_GB`, `English` and for no language at all (a live session
    that names none counts as English: see live_engines in the worker)."""
    if not language:
        return True
    return language.replace("_", "-").split("-")[0].strip().lower() in ENGLISH_CODES


def live_language_refusal(stream_engine: str, language: str | None) -> str | None:
    """Why a live session in `language` cannot be served by `stream_engine`, or None: Moonshine
    knows English only, and the API says so before it holds a stream worker."""
    if stream_engine == "moonshine" and not is_english(language):
        return (f"this server's live engine (Moonshine) transcribes English only, not {language!r}: ask its "
                "operator for stream_engine=auto or whisper")
    return None
