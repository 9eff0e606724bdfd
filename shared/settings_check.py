"""Bad settings fail when the configuration is read, in one line a person can act on.

A wrong value used to surface late: `whisper_model: large-v3` started every process and
ended in fourteen tracebacks, `asr_file_cfg.max_instance: -2` as Celery's `--concurrency`
error after three restarts. Here each problem names the key as the user wrote it (the config
file's dotted key, or the environment variable), the value, and what is allowed; a key that
is close to one of ours but not one gets "did you mean".
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

#: Counts that cannot be 0: a process, a connection, a beam must exist.
AT_LEAST_ONE = frozenset({
    "api_max_connections", "api_processes", "file_worker_concurrency", "whisper_beam_size", "whisper_batch_size",
    "stream_sessions_per_worker", "webhook_worker_concurrency", "funasr_batch_size_s", "max_upload_bytes",
    "max_request_body_bytes", "job_time_limit_s",
})
#: Fractions of one.
FRACTIONS = frozenset({"webhook_retry_jitter_fraction"})
#: Cosine similarities (-1 accepts every match: what bench/voiceprint.py measures with).
COSINES = frozenset({"speaker_match_threshold"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: ODDASR_ variables that are not settings (the test suite's caches, the config file's path).
NOT_SETTINGS_ENV = frozenset({"ODDASR_CONFIG_FILE", "ODDASR_TEST_MODEL_CACHE", "ODDASR_TEST_SPEECH_CACHE"})
#: How alike a key must be to one of ours to be taken for a misspelling of it.
MISSPELLING_CUTOFF = 0.85
#: Whisper models the project installs; anything else must be a directory holding one.
INSTALLED_WHISPER_MODELS = ("base", "tiny.en")


class SettingsError(ValueError):
    """One or more settings are wrong; the message has one line per problem."""


def number_problem(field_name: str, value: object) -> str | None:
    """What is wrong with a numeric setting's value, or None. Every number here is a count, a
    size, a duration or a port: none may be negative, some may not be 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if (field_name == "port" or field_name.endswith("_port")) and not 0 <= value <= 65535:
        return "must be a port number from 1 to 65535 (0: off)"
    if field_name in FRACTIONS and not 0 <= value <= 1:
        return "must be between 0 and 1"
    if field_name in COSINES:
        return None if -1 <= value <= 1 else "must be a cosine similarity, between -1 and 1"
    if field_name in AT_LEAST_ONE and value < 1:
        return "must be 1 or more"
    if value < 0:
        return "cannot be negative"
    return None


def log_level_problem(value: object) -> str | None:
    if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
        return None
    return f"must be one of {', '.join(LOG_LEVELS)} (or 10, 20, 30, 40, 50)"


def whisper_model_problem(name: str) -> str | None:
    """The installed names, or a directory with a CTranslate2 model.bin (checked where a process
    will load it: the launcher and the worker commands, not the API, whose image has no models)."""
    if name in INSTALLED_WHISPER_MODELS or (Path(name) / "model.bin").is_file():
        return None
    return (f"is not available here: use {' or '.join(repr(m) for m in INSTALLED_WHISPER_MODELS)} (installed with "
            "the project), or the path of a directory holding a CTranslate2 Whisper model.bin")


def closest(name: str, known: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=MISSPELLING_CUTOFF)
    return matches[0] if matches else None


def misspelled_config_keys(ignored_keys: Iterable[str], known_keys: Iterable[str], file_name: str) -> list[str]:
    """`whisper_modle` -> a problem line. Only flat keys (top level, or in the original's
    `odd_asr_cfg`) are compared: the original's nested sections hold keys of its own that this
    version does not use, some of them one letter from one it does."""
    known = [key for key in known_keys if "." not in key]
    problems = []
    for dotted in ignored_keys:
        flat = dotted.removeprefix("odd_asr_cfg.")
        if "." in flat:
            continue
        guess = closest(flat, known)
        if guess is not None:
            problems.append(f"{file_name}: unknown key {dotted!r}: did you mean {guess!r}?")
    return problems


def misspelled_environment(environ: Mapping[str, str], prefix: str, fields: Iterable[str]) -> list[str]:
    field_names = list(fields)
    problems = []
    for variable in environ:
        upper = variable.upper()
        if not upper.startswith(prefix) or upper in NOT_SETTINGS_ENV:
            continue
        name = upper[len(prefix):].lower()
        if name in field_names:
            continue
        guess = closest(name, field_names)
        if guess is not None:
            problems.append(f"environment: unknown variable {variable}: did you mean {prefix}{guess.upper()}?")
    return problems


def explain(error: ValidationError, *, file_sources: Mapping[str, str], overrides: Iterable[str],
            environ: Mapping[str, str], prefix: str) -> str:
    """pydantic's multi-line report as one line per setting, named as the user wrote it."""
    given = set(overrides)
    upper_environ = {key.upper(): key for key in environ}
    lines = []
    for problem in error.errors():
        field_name = str(problem["loc"][0]) if problem["loc"] else ""
        message = str(problem["msg"]).removeprefix("Value error, ")
        value: Any = problem.get("input")
        if not field_name:  # a rule across settings: its message names them
            lines.append(message)
            continue
        if field_name in file_sources:
            where = file_sources[field_name]
        elif field_name in given:
            where = field_name
        elif f"{prefix}{field_name.upper()}" in upper_environ:
            where = upper_environ[f"{prefix}{field_name.upper()}"]
        else:
            where = field_name
        lines.append(f"{where} = {value!r}: {message}")
    return "\n".join(lines)
