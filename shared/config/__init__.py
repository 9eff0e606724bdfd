"""Settings, by concern: the only code that reads environment variables and config files.

Modules:
- settings: `Settings`, composed of one model per concern (flat names, `ODDASR_*` variables),
  the rules across concerns, and the engines' sections (`settings.whisper`, `settings.funasr`);
- server, keys, storage, limits, queues, model_runtime, whisper, funasr, speakers, streaming,
  webhooks, metrics, transcripts: one concern's fields, validators and derived values each;
- original_config: the original OddASR `config.json`, translated to these fields;
- loading: `load_settings` (config file + environment + overrides, one report of all problems)
  and the process-wide `get_settings`;
- prometheus_env: prometheus_client's multiprocess directory in the environment.
The checks that explain a bad value live in shared.settings_check.
"""

from shared.config.funasr import FunAsrSettings
from shared.config.loading import CONFIG_FILE_ENV, get_settings, load_settings, unused_config_keys_message
from shared.config.original_config import values_from_config_file
from shared.config.prometheus_env import (
    PROMETHEUS_MULTIPROC_DIR_ENV,
    export_metrics_multiproc_dir,
    metrics_multiproc_dir,
)
from shared.config.queues import QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE, QUEUE_WEBHOOKS
from shared.config.settings import ENV_PREFIX, Settings
from shared.config.whisper import WhisperSettings

__all__ = [
    "CONFIG_FILE_ENV",
    "ENV_PREFIX",
    "PROMETHEUS_MULTIPROC_DIR_ENV",
    "QUEUE_CPU",
    "QUEUE_GPU",
    "QUEUE_SENTENCE",
    "QUEUE_WEBHOOKS",
    "FunAsrSettings",
    "Settings",
    "WhisperSettings",
    "export_metrics_multiproc_dir",
    "get_settings",
    "load_settings",
    "metrics_multiproc_dir",
    "unused_config_keys_message",
    "values_from_config_file",
]
