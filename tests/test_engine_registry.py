"""One engine registry: the catalog's descriptors (shared) and the worker's loaders agree, the
settings accept exactly the catalog's names, and nothing else compares an engine's name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.options import check_language, check_supported
from shared.config import Settings
from shared.engines_catalog import (
    ENGINES,
    FILE_ENGINE_NAMES,
    FUNASR,
    LIVE_AUTO,
    MOONSHINE,
    OPENAI_MODEL_ALIAS,
    STREAM_ENGINE_CHOICES,
    WHISPER,
    Itn,
    file_engine,
    live_language_refusal,
)
from shared.errors import BadRequestError, NotSupportedError
from shared.schemas import JobOptions
from worker.engines.registry import FILE_ENGINES, LIVE_ONLY_ENGINES, fast_live_engine

ROOT = Path(__file__).resolve().parent.parent
#: Where engine names may be read: the catalog (whose names the settings validate against)
#: and the engines themselves.
NAME_OWNERS = (ROOT / "shared" / "engines_catalog", ROOT / "worker" / "engines")


def _name_comparisons(path: Path) -> list[str]:
    """`x == "whisper"`, `engine != "funasr"`, `name in ("moonshine", ...)` in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Compare):
            continue
        for operand in (node.left, *node.comparators):
            literals = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
            if any(isinstance(item, ast.Constant) and item.value in ENGINES for item in literals):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_nothing_outside_the_registry_compares_an_engine_name() -> None:
    modules = [path for package in ("api", "shared", "worker") for path in (ROOT / package).rglob("*.py")
               if not any(path.is_relative_to(owner) for owner in NAME_OWNERS)]
    comparisons = [found for path in modules for found in _name_comparisons(path)]
    assert comparisons == [], "ask the engine's descriptor (shared/engines_catalog) instead:\n" + "\n".join(comparisons)


def test_the_worker_registry_loads_every_engine_of_the_catalog() -> None:
    assert set(FILE_ENGINES) == {name for name, engine in ENGINES.items() if engine.serves_files}
    assert set(LIVE_ONLY_ENGINES) == {name for name, engine in ENGINES.items() if not engine.serves_files}


def test_settings_take_the_catalogs_names_and_refuse_others(tmp_path: Path) -> None:
    assert FILE_ENGINE_NAMES == ("whisper", "funasr")
    assert STREAM_ENGINE_CHOICES == ("auto", "moonshine", "whisper", "funasr")
    with pytest.raises(ValidationError, match="'whisper' or 'funasr'"):
        Settings(data_dir=tmp_path, engine="moonshine")
    with pytest.raises(ValidationError, match="'auto', 'moonshine', 'whisper' or 'funasr'"):
        Settings(data_dir=tmp_path, stream_engine="vosk")
    with pytest.raises(ValidationError, match="stream_engine=funasr borrows the FunASR file engine's offline model"):
        Settings(data_dir=tmp_path, stream_engine="funasr")
    with pytest.raises(ValidationError, match="stream_engine=whisper streams with the Whisper file engine's model"):
        Settings(data_dir=tmp_path, engine="funasr", stream_engine="whisper")
    assert Settings(data_dir=tmp_path, engine="funasr", stream_engine="moonshine").stream_engine == "moonshine"


def test_the_live_engine_choice_follows_the_descriptors(tmp_path: Path) -> None:
    assert fast_live_engine(Settings(data_dir=tmp_path)) is MOONSHINE  # auto with Whisper: Moonshine for English
    assert fast_live_engine(Settings(data_dir=tmp_path, engine="funasr")) is None  # auto with FunASR: its 2pass
    assert fast_live_engine(Settings(data_dir=tmp_path, stream_engine="whisper")) is None
    assert fast_live_engine(Settings(data_dir=tmp_path, engine="funasr", stream_engine="moonshine")) is MOONSHINE
    assert live_language_refusal("moonshine", "de") is not None
    assert live_language_refusal(LIVE_AUTO, "de") is None and live_language_refusal("whisper", "de") is None
    assert FUNASR.max_live_sessions_per_process == 1 and WHISPER.max_live_sessions_per_process is None


def test_descriptors_answer_what_the_api_asks(tmp_path: Path) -> None:
    whisper = Settings(data_dir=tmp_path, whisper_model="tiny.en")
    funasr = Settings(data_dir=tmp_path, engine="funasr", funasr_language="ja", funasr_asr_model="iic/SenseVoiceSmall")
    assert file_engine(whisper) is WHISPER and file_engine(funasr) is FUNASR
    assert WHISPER.languages(whisper) == ("en",) and "de" in WHISPER.languages(Settings(data_dir=tmp_path))
    assert FUNASR.languages(funasr) == ("zh", "en", "ja")
    assert WHISPER.model_ids(whisper) == ["whisper-tiny.en", OPENAI_MODEL_ALIAS]
    assert FUNASR.model_ids(funasr) == ["funasr-paraformer", OPENAI_MODEL_ALIAS]
    assert WHISPER.itn(whisper) == Itn.ALWAYS and FUNASR.itn(funasr) == Itn.SWITCH
    assert FUNASR.itn(Settings(data_dir=tmp_path, engine="funasr")) == Itn.NEVER


def test_the_api_refusals_name_the_engine_and_the_way_out(tmp_path: Path) -> None:
    whisper = Settings(data_dir=tmp_path, whisper_model="tiny.en")
    with pytest.raises(BadRequestError, match=r"language 'de' is not supported by the whisper engine \(model tiny.en\)"
                       r": use one of en, or auto"):
        check_language("de", whisper)
    funasr = Settings(data_dir=tmp_path, engine="funasr")
    with pytest.raises(BadRequestError, match=r"language 'de' is not supported by the funasr engine: use one of zh"):
        check_language("de", funasr)
    with pytest.raises(NotSupportedError, match="word timestamps are not supported by the funasr engine"):
        check_supported(JobOptions(word_timestamps=True), funasr)
    with pytest.raises(NotSupportedError, match="use_itn=true needs a SenseVoice model"):
        check_supported(JobOptions(use_itn=True), funasr)
    with pytest.raises(NotSupportedError, match=r"cannot be turned off \(use_itn=false\)"):
        check_supported(JobOptions(use_itn=False), whisper)
    with pytest.raises(NotSupportedError, match="ODDASR_FUNASR_SPK_MODEL"):
        check_supported(JobOptions(diarize=True), funasr)
