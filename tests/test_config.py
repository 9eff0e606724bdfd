"""Settings: the original config.json format, env overrides, derived values."""

from __future__ import annotations

import json
from pathlib import Path

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
    assert "asr_stream_cfg.free_resource_timeout" in values["ignored_config_keys"]


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
