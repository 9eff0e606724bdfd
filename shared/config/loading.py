"""Reading the settings once per process: config file, environment, overrides, one report."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared import settings_check
from shared.config.original_config import known_config_keys, read_config_file
from shared.config.settings import ENV_PREFIX, Settings

CONFIG_FILE_ENV = f"{ENV_PREFIX}CONFIG_FILE"


def unused_config_keys_message(settings: Settings) -> str | None:
    """One line naming the config file's keys this version does not use, or None.

    Entry points log it once, after configuring logging (logged inside `load_settings`, it
    would come before any handler exists and every child process would repeat it)."""
    if not settings.ignored_config_keys:
        return None
    return f"config keys not used by this version: {', '.join(settings.ignored_config_keys)}"


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the settings once; pass the result around instead of calling this again."""
    path = config_file or os.environ.get(CONFIG_FILE_ENV) or None
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    if path:
        values, sources = read_config_file(Path(path))
        problems += settings_check.misspelled_config_keys(values["ignored_config_keys"], known_config_keys(),
                                                          Path(path).name)
    problems += settings_check.misspelled_environment(os.environ, ENV_PREFIX, Settings.model_fields)
    values.update(overrides)
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        problems.append(settings_check.explain(exc, file_sources=sources, overrides=overrides, environ=os.environ,
                                               prefix=ENV_PREFIX))
    if problems:
        raise settings_check.SettingsError("\n".join(problems))
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, for entry points (WSGI app, Celery app) that take no args."""
    return load_settings()
