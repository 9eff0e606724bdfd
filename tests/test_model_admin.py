"""`oddasr models verify|download`, run as users run them: the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def oddasr(args: list[str], env_extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODDASR_")}
    env.update({"ODDASR_DATA_DIR": str(tmp_path), "ODDASR_MODEL_CACHE_DIR": os.environ["ODDASR_TEST_MODEL_CACHE"],
                **env_extra})
    command = [str(Path(sys.executable).parent / "oddasr"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_verify_whisper_reports_each_model_and_its_load_time(tmp_path: Path) -> None:
    result = oddasr(["models", "verify", "--json"], {"ODDASR_WHISPER_MODEL": "tiny.en"}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    reports = {r["role"]: r for r in json.loads(result.stdout)}
    assert set(reports) == {"whisper", "vad", "engine"}
    assert all(r["ok"] for r in reports.values())
    assert reports["whisper"]["path"].endswith("model") and reports["engine"]["load_s"] > 0


def test_verify_funasr_with_local_directories(tmp_path: Path, tiny_funasr_models: dict[str, Path]) -> None:
    env = {"ODDASR_ENGINE": "funasr", "ODDASR_FUNASR_ASR_MODEL": str(tiny_funasr_models["asr"]),
           "ODDASR_FUNASR_PUNC_MODEL": str(tiny_funasr_models["punc"]),
           "ODDASR_FUNASR_SPK_MODEL": str(tiny_funasr_models["spk"])}
    result = oddasr(["models", "verify"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for role in ("asr", "punc", "spk", "engine"):
        assert any(line.startswith(role) and " ok " in line for line in result.stdout.splitlines()), result.stdout


def test_verify_fails_loudly_on_a_model_that_is_not_there(tmp_path: Path) -> None:
    env = {"ODDASR_ENGINE": "funasr", "ODDASR_FUNASR_ASR_MODEL": "paraformer-zh"}
    result = oddasr(["models", "verify"], env, tmp_path)
    assert result.returncode == 1
    assert "FAILED" in result.stdout and "oddasr models download" in result.stdout


@pytest.mark.parametrize("engine", ["whisper", "funasr"])
def test_download_skips_local_directories(tmp_path: Path, engine: str, tiny_funasr_models: dict[str, Path]) -> None:
    env = {"ODDASR_ENGINE": engine, "ODDASR_FUNASR_ASR_MODEL": str(tiny_funasr_models["asr"])}
    result = oddasr(["models", "download"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to download" in result.stdout
