"""Settings: the only code that reads environment variables and config files.

Sources, strongest first: `ODDASR_*` environment variables, then the config file named by
`-c` / `ODDASR_CONFIG_FILE` (the original OddASR `config.json` format or this project's own
keys), then the defaults. The launcher passes its settings to child processes as
environment variables, so every process of one deployment sees the same values.

`Settings` is composed of one model per concern (shared/config/<concern>.py), by inheritance:
every field keeps its flat name (`settings.whisper_model`, `ODDASR_WHISPER_MODEL`, the config
file's `whisper_model`), and an engine takes only its own section (`settings.whisper`,
`settings.funasr`), a typed copy holding that section's fields and nothing else.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared import engines_catalog, settings_check
from shared.config.funasr import FunAsrSettings
from shared.config.keys import KeySettings
from shared.config.limits import RequestLimitSettings
from shared.config.metrics import MetricsSettings
from shared.config.queues import QueueSettings
from shared.config.server import ServerSettings
from shared.config.speakers import SpeakerSettings
from shared.config.storage import StorageSettings
from shared.config.streaming import StreamingSettings
from shared.config.transcripts import TranscriptSettings
from shared.config.webhooks import WebhookSettings
from shared.config.whisper import WhisperSettings

ENV_PREFIX = "ODDASR_"

SectionT = TypeVar("SectionT", bound=BaseModel)


class Settings(ServerSettings, KeySettings, StorageSettings, RequestLimitSettings, QueueSettings, WhisperSettings,
               FunAsrSettings, SpeakerSettings, StreamingSettings, WebhookSettings, MetricsSettings,
               TranscriptSettings, BaseSettings):
    """Every setting of every process, with the unit in each number's name."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", case_sensitive=False)

    # --- engines (checked together below) ---------------------------------------------------
    #: The file engine: one of the engine catalog's (shared/engines_catalog) that serve files.
    engine: Literal[engines_catalog.FILE_ENGINE_NAMES] = engines_catalog.DEFAULT_FILE_ENGINE  # type: ignore[valid-type]
    #: Which engine serves live sessions. `auto`: Moonshine tiny for English sessions (language
    #: `en` or unset, no hotwords: Moonshine cannot bias towards them), the configured Whisper
    #: model for other languages and hotword sessions; with `engine=funasr`, FunASR's streaming
    #: model. `moonshine`, `whisper` or `funasr`: that engine for every session.
    stream_engine: Literal[engines_catalog.STREAM_ENGINE_CHOICES] = engines_catalog.LIVE_AUTO  # type: ignore[valid-type]

    # --- logging ---------------------------------------------------------------------------
    log_level: str = "INFO"
    #: Keys of the config file that this version does not use (reported, never fatal).
    ignored_config_keys: list[str] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the config file (passed as init values), so a container can
        # override one key of a mounted config.json.
        return (env_settings, init_settings)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: object) -> object:
        """The original writes levels as numbers (10 = DEBUG); logging wants names."""
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return logging.getLevelName(int(value))
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if problem := settings_check.log_level_problem(value):
            raise ValueError(problem)
        return value.strip().upper()

    @field_validator("*")
    @classmethod
    def _number_in_range(cls, value: object, info: ValidationInfo) -> object:
        """Every number is a count, size, duration or port: none negative, some not 0."""
        if problem := settings_check.number_problem(str(info.field_name), value):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _fill_derived(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'oddasr.db').resolve()}"
        if self.storage_local_dir is None:
            self.storage_local_dir = self.data_dir / "storage"
        if self.model_cache_dir is None:
            self.model_cache_dir = self.data_dir / "models"
        if self.metrics_dir is None:
            self.metrics_dir = self.data_dir / "metrics"
        if problem := engines_catalog.stream_engine_problem(self.engine, self.stream_engine):
            raise ValueError(problem)
        if self.stream_sessions_per_worker < 1:
            raise ValueError("stream_sessions_per_worker must be at least 1")
        tls_users = ([] if self.disable_stream or not self.enable_https else ["enable_https puts TLS on the"
                                                                             " websocket ports"])
        tls_users += ["https_api puts TLS on the HTTP API"] if self.https_api else []
        if tls_users:
            missing = [name for name in ("ssl_cert_path", "ssl_key_path") if not getattr(self, name)]
            unreadable = [path for path in (self.ssl_cert_path, self.ssl_key_path) if path and not Path(path).is_file()]
            if missing or unreadable:
                raise ValueError(
                    f"{' and '.join(tls_users)}: that needs a certificate and its key: "
                    + (f"set {' and '.join(missing)}" if missing else f"no such file: {', '.join(unreadable)}"))
        return self

    # --- sections ----------------------------------------------------------------------------
    @property
    def whisper(self) -> WhisperSettings:
        """The Whisper engine's section, for the engine to take instead of all settings."""
        return self._section(WhisperSettings)

    @property
    def funasr(self) -> FunAsrSettings:
        """The FunASR engines' section, for them to take instead of all settings."""
        return self._section(FunAsrSettings)

    def _section(self, section: type[SectionT]) -> SectionT:
        """A copy of this concern's fields, already validated (and derived, e.g. model_cache_dir)."""
        return section.model_construct(**{name: getattr(self, name) for name in section.model_fields})

    def as_child_environment(self) -> dict[str, str]:
        """These settings as ODDASR_* variables, for the processes the launcher starts."""
        env: dict[str, str] = {}
        for name, value in self.model_dump(exclude={"ignored_config_keys"}).items():
            if value is None:
                continue
            if isinstance(value, list):
                text = ",".join(str(item) for item in value)
            elif isinstance(value, dict):
                text = json.dumps(value)  # how a dict setting is read back from the environment
            else:
                text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            env[f"{ENV_PREFIX}{name.upper()}"] = text
        env[f"{ENV_PREFIX}REDIS_URL"] = self.effective_redis_url
        return env
