"""The original OddASR `config.json`, translated to this project's settings.

A config file holds either the original's keys (its DEFAULT_CONFIG: `HOST`, `odd_asr_cfg`,
`asr_file_cfg.max_instance`, `redis_cfg`, ...) or this project's own field names; both may be
mixed. What this version does not use is reported by name, never fatal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shared.config.settings import Settings

# Keys of the original OddASR config.json (its DEFAULT_CONFIG) and where they go. Nested keys
# are dotted. The original nests the engine sections in `odd_asr_cfg`; older versions had
# them at the top level, so every key below is read in both places (odd_asr_cfg wins).
_ODD_ASR_CFG_KEYS: dict[str, str] = {
    "preload_model": "preload_model",
    "enable_gpu": "enable_gpu",
    "disable_stream": "disable_stream",
    #: "concurrent threads, 0 = one per CPU core": our threads per worker process.
    "concurrent_thread": "cpu_threads",
    "asr_file_cfg.max_instance": "file_worker_concurrency",
    "asr_sentence_cfg.max_instance": "sentence_worker_concurrency",
    "asr_stream_cfg.max_instance": "stream_workers",
    #: Seconds without audio after which the original freed a stream's model instance.
    "asr_stream_cfg.free_resource_timeout": "stream_idle_timeout_s",
    "enable_https": "enable_https",
    "ssl_cert_path": "ssl_cert_path",
    "ssl_key_path": "ssl_key_path",
}
_TOP_LEVEL_KEYS: dict[str, str] = {
    "HOST": "host",
    "PORT": "port",
    "WS_HOST": "ws_host",
    "WS_PORT": "ws_port",
    "log_level": "log_level",
    "LOG_LEVEL": "log_level",
    "max_instance": "file_worker_concurrency",
}
#: The original's word lists; relative paths are read from the config file's directory.
_WORD_LIST_KEYS: dict[str, str] = {
    "odd_asr_slp_cfg.sensitive_words.path": "sensitive_words_path",
    "odd_asr_slp_cfg.hotwords.path": "hotwords_path",
}
_LEGACY_KEYS: dict[str, str] = {
    **_TOP_LEVEL_KEYS,
    **_WORD_LIST_KEYS,
    **_ODD_ASR_CFG_KEYS,
    **{f"odd_asr_cfg.{key}": target for key, target in _ODD_ASR_CFG_KEYS.items()},
}
#: The original's external Redis (`redis_cfg`), used only when `redis_enabled` is true;
#: otherwise `oddasr run` starts its own redis-server, as the original ran without one.
_REDIS_CFG_PREFIX = "redis_cfg."


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _redis_url_from(section: dict[str, Any]) -> str:
    """The original's `redis_cfg` as a URL; empty when the original would not use Redis."""
    if not section.get("redis_enabled"):
        return ""
    password = str(section.get("redis_password") or "")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{section.get('redis_host') or '127.0.0.1'}:{int(section.get('redis_port') or 6379)}/0"


def values_from_config_file(path: Path) -> dict[str, Any]:
    """Map a config file (original OddASR format or our own keys) to Settings fields."""
    return read_config_file(path)[0]


def known_config_keys() -> list[str]:
    """Every key a config file may hold: our field names and the original's keys."""
    return [*Settings.model_fields, *_LEGACY_KEYS]


def read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The Settings values of a config file, and for each field the key it came from as the
    user wrote it (`config.json: asr_file_cfg.max_instance`), for error messages."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a JSON object")
    own_fields = set(Settings.model_fields)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    ignored: list[str] = []
    flat = _flatten(data)
    # Top-level (older) keys first, so the original's current odd_asr_cfg nesting wins.
    for dotted in sorted(flat, key=lambda key: key.startswith("odd_asr_cfg.")):
        value = flat[dotted]
        if dotted.startswith(_REDIS_CFG_PREFIX):
            continue
        target = _LEGACY_KEYS.get(dotted)
        if target is None and dotted.lower() in own_fields:
            target = dotted.lower()
        if target is None:
            ignored.append(dotted)
            continue
        if dotted in _WORD_LIST_KEYS and value:
            value = path.parent / str(value)  # an absolute path stays as it is
        values[target] = value
        sources[target] = f"{path.name}: {dotted}"
    redis_section = data.get("redis_cfg")
    if isinstance(redis_section, dict) and _redis_url_from(redis_section) and "redis_url" not in values:
        values["redis_url"] = _redis_url_from(redis_section)
    values["ignored_config_keys"] = [key for key in flat if key in ignored]
    return values, sources
