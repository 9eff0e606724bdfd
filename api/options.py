"""The checks of the job options a client sends, with the messages clients act on: the request
models (api/request_models) run them as their fields' validators, live sessions call them directly."""

from __future__ import annotations

import re
from collections.abc import Mapping

from shared.config import Settings
from shared.engines_catalog import file_engine
from shared.errors import BadRequestError, NotSupportedError
from shared.jobs.rows import UPLOAD_MODES
from shared.render import RENDERERS
from shared.schemas import JobOptions
from shared.webhooks.callback_url import CallbackUrlError, check_callback_url

MODES = UPLOAD_MODES
MAX_HOTWORDS = 200
MAX_HOTWORDS_CHARS = 2000
MAX_SPEAKERS = 20
_LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(name: str, raw: str | None, *, default: bool = False) -> bool:
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadRequestError(f"'{name}' must be true or false, not {raw!r}")



def parse_optional_bool(name: str, raw: str | None, *, default: bool | None) -> bool | None:
    """A switch that may be left to the engine: absent or empty gives `default` (maybe None)."""
    if raw is None or not raw.strip():
        return default
    return parse_bool(name, raw)


def parse_speaker_count(name: str, raw: str | None) -> int | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"'{name}' must be a whole number of speakers, not {raw!r}") from None
    if not 1 <= value <= MAX_SPEAKERS:
        raise BadRequestError(f"'{name}' must be between 1 and {MAX_SPEAKERS}")
    return value


def parse_mode(raw: str | None) -> str:
    mode = (raw or "file").strip().lower()
    if mode not in MODES:
        raise BadRequestError(f"unknown mode {raw!r}: use one of {', '.join(MODES)}")
    return mode


def parse_output_format(raw: str | None, default: str = "txt", field: str = "output_format") -> str:
    """`field`: the parameter's name as the client sent it (`format` on the transcript route)."""
    fmt = (raw or default).strip().lower()
    if fmt not in RENDERERS:
        raise BadRequestError(f"unknown {field} {raw!r}: use one of {', '.join(sorted(RENDERERS))}", param=field)
    return fmt


def parse_hotwords(raw: str | None) -> list[str]:
    """Hotwords as OddASR sends them: space-separated (commas and newlines accepted too)."""
    if not raw:
        return []
    if len(raw) > MAX_HOTWORDS_CHARS:
        raise BadRequestError(f"'hotwords' is longer than {MAX_HOTWORDS_CHARS} characters")
    return check_hotwords([w for w in re.split(r"[\s,]+", raw.strip()) if w])


def check_hotwords(words: list[str], field: str = "hotwords") -> list[str]:
    """The caps of the form field `hotwords`, wherever a client's own hotwords arrive (a live
    session's start message in each protocol, the OpenAI `prompt`): at most `MAX_HOTWORDS`
    entries of at most `MAX_HOTWORDS_CHARS` characters in all, counted as if joined by spaces.
    (Named hotword sets have their own caps, `shared.hotwords`.)"""
    if len(words) > MAX_HOTWORDS:
        raise BadRequestError(f"at most {MAX_HOTWORDS} hotwords are accepted, got {len(words)}")
    chars = sum(len(word) for word in words) + max(len(words) - 1, 0)
    if chars > MAX_HOTWORDS_CHARS:
        longer = "; a hotword set (PUT /v1/hotwords/{name}) holds longer lists" if field == "hotwords" else ""
        raise BadRequestError(f"'{field}' is longer than {MAX_HOTWORDS_CHARS} characters ({chars}){longer}")
    return words


def parse_language(raw: str | None) -> str | None:
    if raw is None or not raw.strip() or raw.strip().lower() == "auto":
        return None
    language = raw.strip()
    if not _LANGUAGE_RE.match(language):
        raise BadRequestError(f"'language' must be a language code such as 'en' or 'zh', not {raw!r}",
                              param="language")
    return language.split("-")[0].split("_")[0].lower()


def check_supported(options: JobOptions, settings: Settings) -> None:
    """Refuse options the configured engine cannot honour, naming the engine."""
    engine = file_engine(settings)
    if options.diarize and not engine.supports_diarization(settings):
        raise NotSupportedError(engine.diarize_unavailable_reason())
    if options.word_timestamps and not engine.word_timestamps:
        raise NotSupportedError(f"word timestamps are not supported by the {engine.name} engine")
    if refusal := engine.itn_refusal(settings, options.use_itn):
        raise NotSupportedError(refusal)
    check_language(options.language, settings)


def check_language(language: str | None, settings: Settings) -> None:
    """Refuse a language the configured engine and model do not know, before anything is
    stored or queued (otherwise the job would only fail in the worker), naming the valid codes."""
    if language is None:
        return
    engine = file_engine(settings)
    valid = engine.languages(settings)
    if language not in valid:
        raise BadRequestError(
            f"language {language!r} is not supported by {engine.describe(settings)}:"
            f" use one of {', '.join(valid)}, or auto"
        )


def parse_callback_url(form: Mapping[str, str], settings: Settings) -> str | None:
    """The webhook URL a client sent (`callback_url`, or `webhook_url`), checked now so a
    URL the service will never call is a 400 before anything is stored."""
    raw = form.get("callback_url") or form.get("webhook_url")
    if raw is None or not raw.strip():
        return None
    if not settings.webhook_secrets:
        raise BadRequestError("this server sends no webhooks: it has no signing secret (ODDASR_WEBHOOK_SECRETS)")
    try:
        return check_callback_url(raw, allowed_networks=settings.webhook_allowed_networks,
                                  max_chars=settings.webhook_max_url_chars)
    except CallbackUrlError as exc:
        raise BadRequestError(str(exc)) from None
