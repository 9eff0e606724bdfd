"""Settings: the original config.json format, env overrides, derived values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.config import load_settings, values_from_config_file

ORIGINAL_CONFIG = {
    "HOST": "0.0.0.0",
    "PORT": 9100,
    "WS_HOST": "0.0.0.0",
    "WS_PORT": 8102,
    "odd_asr_cfg": {"enable_gpu": True, "preload_model": False, "concurrent_thread": 4},
    "asr_file_cfg": {"max_instance": 3, "batch_size_s": 300},
    "asr_sentence_cfg": {"max_instance": 2},
    "asr_stream_cfg": {"max_instance": 5, "free_resource_timeout": 10},
    "Debug": True,
}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_original_config_keys_map_to_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ODDASR_PORT", raising=False)
    settings = load_settings(write(tmp_path, ORIGINAL_CONFIG))
    assert settings.host == "0.0.0.0"
    assert settings.port == 9100
    assert settings.ws_port == 8102
    assert settings.enable_gpu is True
    assert settings.preload_model is False
    assert settings.file_worker_concurrency == 3
    assert settings.sentence_worker_concurrency == 2


def test_unused_keys_are_reported_not_fatal(tmp_path: Path) -> None:
    values = values_from_config_file(write(tmp_path, ORIGINAL_CONFIG))
    assert "Debug" in values["ignored_config_keys"]
    assert "asr_file_cfg.batch_size_s" in values["ignored_config_keys"]
    assert "asr_stream_cfg.free_resource_timeout" not in values["ignored_config_keys"]


def test_environment_overrides_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODDASR_PORT", "9300")
    assert load_settings(write(tmp_path, ORIGINAL_CONFIG)).port == 9300


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_unreadable_config_file_says_which_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="bad.json"):
        load_settings(path)


def test_visibility_timeout_outlasts_the_longest_job(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, job_time_limit_s=7200)
    assert settings.visibility_timeout_s > settings.job_time_limit_s


def test_child_environment_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = load_settings(data_dir=tmp_path, port=9555, enable_gpu=True, whisper_model="tiny.en")
    for key, value in original.as_child_environment().items():
        monkeypatch.setenv(key, value)
    again = load_settings()
    assert again.port == 9555
    assert again.enable_gpu is True
    assert again.whisper_model == "tiny.en"
    assert again.database_url == original.database_url
    assert again.effective_redis_url == original.effective_redis_url


# The original OddASR's DEFAULT_CONFIG (odd_asr_config.py), whole: the engine sections sit
# inside odd_asr_cfg there.
ORIGINAL_DEFAULT_CONFIG: dict[str, Any] = {
    "HOST": "0.0.0.0",
    "PORT": 9002,
    "WS_HOST": "0.0.0.0",
    "WS_PORT": 8101,
    "Debug": False,
    "odd_asr_cfg": {
        "preload_model": True,
        "enable_gpu": False,
        "disable_stream": False,
        "concurrent_thread": 0,
        "asr_stream_cfg": {
            "max_instance": 1, "save_audio": False, "punct_mini_len": 10, "punct_time_mini_force_trigger": 3,
            "free_resource_timeout": 5, "cache_flush_timeout": 2, "force_final_result": 20, "vad_threshold": 0.8,
            "vad_min_speech_duration": 300, "vad_min_silence_duration": 200,
        },
        "asr_file_cfg": {"max_instance": 1, "save_audio": False},
        "asr_sentence_cfg": {
            "max_instance": 1, "save_audio": False, "punct_mini_len": 10, "punct_time_mini_force_trigger": 3,
            "free_resource_timeout": 5, "cache_flush_timeout": 2, "force_final_result": 20, "vad_threshold": 0.8,
            "vad_min_speech_duration": 300, "vad_min_silence_duration": 200,
        },
        "enable_https": False,
        "ssl_cert_path": "scripts/cert.pem",
        "ssl_key_path": "scripts/key.pem",
    },
    "odd_asr_slp_cfg": {"sensitive_words": {"path": "scripts/sensitivewords"},
                        "hotwords": {"path": "scripts/hotwords"}},
    "db_cfg": {"db_engine": "sqlite", "db_name": "oddasr.db", "db_user": "", "db_password": "", "db_host": "",
               "db_port": ""},
    "redis_cfg": {"redis_enabled": False, "redis_host": "127.0.0.1", "redis_port": 7379, "redis_password": ""},
    "log_file": "oddasr.log",
    "log_path": "logs/",
    "log_level": 10,
    "asr": {"liveasr": "", "appid": "oddasrtest", "secret": "oddasrtest"},
    "Users": "oddasr_users.json",
}

#: The shape of the original's config.json.sample: every section carries the VAD keys.
_SECTION = {"save_audio": False, "punct_mini_len": 10, "punct_time_mini_force_trigger": 3, "free_resource_timeout": 5,
            "force_final_result": 20, "vad_threshold": 0.8, "vad_min_speech_duration": 300,
            "vad_min_silence_duration": 200}
SAMPLE_CONFIG: dict[str, Any] = {
    **ORIGINAL_DEFAULT_CONFIG,
    "odd_asr_cfg": {
        "preload_model": False, "enable_gpu": True, "disable_stream": True, "concurrent_thread": 4,
        "asr_stream_cfg": {"max_instance": 3, **_SECTION, "free_resource_timeout": 12},
        "asr_file_cfg": {"max_instance": 2, **_SECTION},
        "asr_sentence_cfg": {"max_instance": 5, **_SECTION},
        "enable_https": True, "ssl_cert_path": "/etc/oddasr/cert.pem", "ssl_key_path": "/etc/oddasr/key.pem",
    },
    "redis_cfg": {"redis_enabled": True, "redis_host": "redis.internal", "redis_port": 7379,
                  "redis_password": "p@ss"},
    "log_level": 20,
}


def _dotted(data: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in data.items():
        keys |= _dotted(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
    return keys


def test_the_original_default_config_loads_with_its_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ODDASR_PORT", "ODDASR_LOG_LEVEL", "ODDASR_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(write(tmp_path, ORIGINAL_DEFAULT_CONFIG))
    assert (settings.host, settings.port, settings.ws_host, settings.ws_port) == ("0.0.0.0", 9002, "0.0.0.0", 8101)
    assert settings.preload_model is True and settings.enable_gpu is False and settings.disable_stream is False
    assert settings.cpu_threads == 0
    workers = (settings.file_worker_concurrency, settings.sentence_worker_concurrency, settings.stream_workers)
    assert workers == (1, 1, 1)
    assert settings.stream_idle_timeout_s == 5.0
    assert settings.enable_https is False
    assert (settings.ssl_cert_path, settings.ssl_key_path) == ("scripts/cert.pem", "scripts/key.pem")
    assert settings.log_level == "DEBUG"  # the original's 10
    assert settings.redis_url == ""  # redis_enabled false: the embedded redis-server


def test_every_key_of_the_original_default_config_is_mapped_or_reported(tmp_path: Path) -> None:
    values = values_from_config_file(write(tmp_path, ORIGINAL_DEFAULT_CONFIG))
    ignored = set(values["ignored_config_keys"])
    used = _dotted(ORIGINAL_DEFAULT_CONFIG) - ignored
    assert {"odd_asr_cfg.asr_file_cfg.max_instance", "odd_asr_cfg.asr_sentence_cfg.max_instance",
            "odd_asr_cfg.asr_stream_cfg.max_instance", "odd_asr_cfg.disable_stream", "odd_asr_cfg.enable_https",
            "odd_asr_cfg.ssl_cert_path", "odd_asr_cfg.ssl_key_path", "odd_asr_cfg.concurrent_thread",
            "log_level", "redis_cfg.redis_enabled"} <= used
    assert {"Debug", "odd_asr_cfg.asr_stream_cfg.save_audio", "db_cfg.db_engine", "log_path", "Users"} <= ignored
    assert ignored | used == _dotted(ORIGINAL_DEFAULT_CONFIG)


def test_the_sample_config_shape_maps_its_nested_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ODDASR_LOG_LEVEL", "ODDASR_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(write(tmp_path, SAMPLE_CONFIG))
    assert settings.preload_model is False and settings.enable_gpu is True and settings.disable_stream is True
    assert settings.cpu_threads == 4
    workers = (settings.file_worker_concurrency, settings.sentence_worker_concurrency, settings.stream_workers)
    assert workers == (2, 5, 3)
    assert settings.stream_idle_timeout_s == 12.0
    assert settings.enable_https is True
    assert (settings.ssl_cert_path, settings.ssl_key_path) == ("/etc/oddasr/cert.pem", "/etc/oddasr/key.pem")
    assert settings.log_level == "INFO"
    assert settings.redis_url == "redis://:p%40ss@redis.internal:7379/0"


def test_a_file_section_nested_in_odd_asr_cfg_is_read(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, {"odd_asr_cfg": {"asr_file_cfg": {"max_instance": 2}}}))
    assert settings.file_worker_concurrency == 2


def test_the_unused_keys_are_logged_once_after_logging_is_configured(tmp_path: Path) -> None:
    config = write(tmp_path, {**ORIGINAL_DEFAULT_CONFIG, "log_level": 20})
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODDASR_")}
    env["ODDASR_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run([sys.executable, "-m", "shared.cli.main", "-c", str(config), "migrate"], env=env,
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "config keys not used" in line]
    assert len(lines) == 1, result.stderr
    assert "Debug" in lines[0] and "odd_asr_cfg.asr_stream_cfg.save_audio" in lines[0]


# --- bad settings fail when read, one line each, named as written ----------------------------


def _load_error(tmp_path: Path, config: dict[str, object] | None = None) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config or {}))
    with pytest.raises(ValueError) as caught:
        load_settings(path)
    return str(caught.value)


def test_a_bad_value_names_the_key_as_written_the_value_and_what_is_allowed(tmp_path: Path) -> None:
    message = _load_error(tmp_path, {"asr_file_cfg": {"max_instance": -2}, "port": 70000})
    lines = message.splitlines()
    assert "config.json: asr_file_cfg.max_instance = -2: must be 1 or more" in lines, message
    assert "config.json: port = 70000: must be a port number from 1 to 65535 (0: off)" in lines, message
    assert "Traceback" not in message and "pydantic" not in message and len(lines) == 2, message


def test_a_bad_environment_variable_is_named_as_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODDASR_LOG_LEVEL", "verbose")
    message = _load_error(tmp_path)
    assert message.startswith("ODDASR_LOG_LEVEL = 'verbose': must be one of DEBUG, INFO"), message


def test_misspelled_keys_and_variables_get_a_did_you_mean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODDASR_WHISPER_BEAM_SIZ", "3")
    message = _load_error(tmp_path, {"whisper_modle": "base"})
    assert "config.json: unknown key 'whisper_modle': did you mean 'whisper_model'?" in message, message
    assert "unknown variable ODDASR_WHISPER_BEAM_SIZ: did you mean ODDASR_WHISPER_BEAM_SIZE?" in message, message


def test_numeric_log_levels_of_the_original_still_load(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"log_level": 10}))
    assert load_settings(path).log_level == "DEBUG"


def test_oddasr_refuses_a_whisper_model_it_cannot_load_before_starting_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from shared.cli.main import main

    monkeypatch.setenv("ODDASR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ODDASR_CONFIG_FILE", "")  # main() exports -c here; restored after the test
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"whisper_model": "large-v3"}))
    assert main(["-c", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("oddasr: whisper_model = 'large-v3': is not available here"), err
    assert not (tmp_path / "data" / "redis").exists()  # nothing was started
