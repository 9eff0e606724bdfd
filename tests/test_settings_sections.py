"""Settings by concern: one model per concern composed into the flat `Settings`, and the
engines' own sections (`settings.whisper`, `settings.funasr`), with names unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from shared.config import FunAsrSettings, Settings, WhisperSettings, load_settings
from shared.config.model_runtime import ModelRuntimeSettings

#: Fields declared on Settings itself (the rules across concerns check them together).
OWN_FIELDS = {"engine", "stream_engine", "log_level", "ignored_config_keys"}


def concern_models() -> list[type[BaseModel]]:
    return [base for base in Settings.__mro__[1:]
            if isinstance(base, type) and issubclass(base, BaseModel) and base.__module__.startswith("shared.config.")]


def test_every_field_belongs_to_one_concern() -> None:
    declared: dict[str, list[str]] = {}
    for model in concern_models():
        for name in model.__annotations__:
            if name in model.model_fields:
                declared.setdefault(name, []).append(model.__name__)
    assert {name: owners for name, owners in declared.items() if len(owners) > 1} == {}
    assert set(declared) | OWN_FIELDS == set(Settings.model_fields)


def test_the_whisper_section_holds_its_fields_and_nothing_else(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODDASR_WHISPER_BEAM_SIZE", "3")
    settings = load_settings(data_dir=tmp_path, whisper_model="tiny.en", cpu_threads=2)
    section = settings.whisper
    assert type(section) is WhisperSettings
    assert set(section.model_dump()) == set(WhisperSettings.model_fields)
    assert "funasr_asr_model" not in WhisperSettings.model_fields and "redis_url" not in WhisperSettings.model_fields
    assert (section.whisper_model, section.whisper_beam_size, section.cpu_threads) == ("tiny.en", 3, 2)
    assert section.model_cache_dir == tmp_path / "models"  # derived before the section is taken


def test_the_funasr_section_reads_the_original_config_json(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"odd_asr_cfg": {"concurrent_thread": 4}, "funasr_language": "en"}))
    section = load_settings(config, data_dir=tmp_path, engine="funasr").funasr
    assert type(section) is FunAsrSettings
    assert (section.cpu_threads, section.funasr_language) == (4, "en")
    assert set(section.model_dump()) == set(FunAsrSettings.model_fields)
    assert set(ModelRuntimeSettings.model_fields) < set(FunAsrSettings.model_fields)


def test_a_section_is_a_copy(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    section = settings.whisper
    section.whisper_model = "changed"
    assert settings.whisper_model == "base"


def test_the_engines_are_given_their_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.engines import funasr_engine, funasr_stream, registry, whisper_engine

    given: list[Any] = []

    class Recorder:
        def __init__(self, settings: Any, **_: Any) -> None:
            given.append(settings)

    monkeypatch.setattr(whisper_engine, "WhisperEngine", Recorder)
    monkeypatch.setattr(funasr_engine, "FunAsrEngine", Recorder)
    monkeypatch.setattr(funasr_stream, "FunAsrStreamEngine", Recorder)
    registry.load_engine(load_settings(data_dir=tmp_path))
    funasr = load_settings(data_dir=tmp_path, engine="funasr")
    registry.load_streaming_engine(funasr, registry.load_engine(funasr))
    assert [type(section) for section in given] == [WhisperSettings, FunAsrSettings, FunAsrSettings]


def test_every_setting_round_trips_through_the_child_environment(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    original = load_settings(
        data_dir=tmp_path, port=9555, allowed_hosts=["asr.example.com", ".example.org"], auth_mode="required",
        s3_path_style=False, max_upload_bytes=12345, enable_gpu=True, queue_max_backlog_jobs_by_queue={"cpu": 5},
        whisper_model="tiny.en", engine="whisper", funasr_language="en", speaker_match_threshold=0.5,
        stream_workers=3, webhook_retry_schedule_s=[1.0, 2.5], webhook_allowed_networks=["127.0.0.0/8"],
        worker_metrics_port=9200, sensitive_words_mask="##", use_itn=False, audio_retention_days=2.0,
        log_level="DEBUG")
    for key, value in original.as_child_environment().items():
        monkeypatch.setenv(key, value)
    again = load_settings()
    # The one value that changes on the way: children get the Redis the launcher started.
    assert again.redis_url == original.effective_redis_url
    not_compared = {"ignored_config_keys", "redis_url"}
    assert again.model_dump(exclude=not_compared) == original.model_dump(exclude=not_compared)
