"""The FunASR engine through FunASR's real pipeline: tiny random SeacoParaformer, CT-Transformer
punctuation and CAM++ speaker models (their text is noise: these tests prove the pipeline and
the service around it, not accuracy) with the real fsmn-vad weights."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import srt
import webvtt

from shared.audio import decode_16k_mono
from shared.config import Settings
from shared.errors import EngineError, NotSupportedError
from tests.support.speech import REFERENCE_SENTENCES, make_dialogue
from tests.support.stack import Stack, running_stack, wait_for_job
from worker.engines.base import TranscriptionOptions
from worker.engines.funasr_engine import FunAsrEngine
from worker.engines.registry import load_engine


def funasr_settings(tmp: Path, models: dict[str, Path], **overrides: object) -> dict[str, object]:
    return {"engine": "funasr", "funasr_asr_model": str(models["asr"]), "funasr_punc_model": str(models["punc"]),
            "funasr_spk_model": str(models["spk"]), "cpu_threads": 2, "data_dir": tmp, **overrides}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, tiny_funasr_models: dict[str, Path]) -> FunAsrEngine:
    loaded = load_engine(Settings(**funasr_settings(tmp_path_factory.mktemp("funasr"), tiny_funasr_models)))
    assert isinstance(loaded, FunAsrEngine)
    return loaded


@pytest.fixture(scope="module")
def dialogue(speech_dir: Path) -> Path:
    return make_dialogue(REFERENCE_SENTENCES[:4], speech_dir / "funasr-dialogue.wav")[0]


def test_sentences_with_times_and_speakers(engine: FunAsrEngine, dialogue: Path) -> None:
    audio = decode_16k_mono(dialogue)
    seen: list[float] = []
    transcript = engine.transcribe(audio, TranscriptionOptions(diarize=True, hotwords=("abc",)), progress=seen.append)
    assert transcript.engine == "funasr" and transcript.segments
    for segment in transcript.segments:
        assert 0 <= segment.start_s < segment.end_s <= audio.size / 16000 + 0.1
        assert isinstance(segment.speaker, int)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    plain = engine.transcribe(audio, TranscriptionOptions())
    assert all(s.speaker is None for s in plain.segments)


def test_word_timestamps_are_refused(engine: FunAsrEngine, dialogue: Path) -> None:
    with pytest.raises(NotSupportedError, match="word timestamps"):
        engine.transcribe(decode_16k_mono(dialogue), TranscriptionOptions(word_timestamps=True))


def test_hub_ids_are_refused_offline_with_a_way_out(tmp_path: Path, tiny_funasr_models: dict[str, Path]) -> None:
    settings = Settings(**funasr_settings(tmp_path, tiny_funasr_models, funasr_asr_model="paraformer-zh"))
    with pytest.raises(EngineError, match="oddasr models download"):
        load_engine(settings)


def test_a_broken_model_directory_is_a_clear_engine_error(tmp_path: Path,
                                                          tiny_funasr_models: dict[str, Path]) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text("model: NoSuchModel\n")
    (broken / "model.pt").write_bytes(b"")
    with pytest.raises(EngineError, match="could not load"):
        load_engine(Settings(**funasr_settings(tmp_path, tiny_funasr_models, funasr_asr_model=str(broken))))


@pytest.fixture(scope="module")
def funasr_stack(tmp_path_factory: pytest.TempPathFactory, redis_server,  # type: ignore[no-untyped-def]
                 tiny_funasr_models: dict[str, Path]) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("funasr-stack")
    overrides = funasr_settings(tmp / "data", tiny_funasr_models)
    overrides.pop("data_dir")
    with running_stack(tmp, redis_server.url, file_concurrency=1, sentence_concurrency=0, **overrides) as stack:
        yield stack


@pytest.mark.integration
def test_a_diarized_job_through_the_queue_renders_every_format(funasr_stack: Stack, dialogue: Path) -> None:
    with dialogue.open("rb") as audio:
        response = requests.post(funasr_stack.url("/v1/jobs"), files={"audio": audio},
                                 data={"diarize": "true", "hotwords": "abc def"}, timeout=60)
    assert response.status_code == 202, response.text
    job = wait_for_job(funasr_stack, response.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["engine"] == "funasr"
    segments = job["result"]["segments"]
    assert segments and all(isinstance(s["speaker"], int) and s["start"] < s["end"] for s in segments)
    base = funasr_stack.url(f"/v1/jobs/{job['id']}/transcript")
    assert list(srt.parse(requests.get(base, params={"format": "srt"}, timeout=10).text))
    vtt = requests.get(base, params={"format": "vtt"}, timeout=10).text
    assert webvtt.from_buffer(io.StringIO(vtt)).captions
    for fmt in ("txt", "spk", "json", "srt-oddasr"):
        assert requests.get(base, params={"format": fmt}, timeout=10).status_code == 200
    refused = requests.post(funasr_stack.url("/v1/jobs"), files={"audio": dialogue.open("rb")},
                            data={"word_timestamps": "true"}, timeout=60)
    assert refused.status_code == 422 and "funasr" in refused.json()["error"]


def test_the_itn_switch_reaches_the_model_without_breaking_it(engine: FunAsrEngine, dialogue: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The API lets `use_itn` through only where the model has the switch; the engine hands it
    to FunASR's generate as is (a Paraformer takes and ignores it, a SenseVoice uses it)."""
    seen: list[dict] = []
    generate = engine._model.generate  # noqa: SLF001

    def spy(**kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs)
        return generate(**kwargs)

    monkeypatch.setattr(engine._model, "generate", spy)  # noqa: SLF001
    audio = decode_16k_mono(dialogue)
    engine.transcribe(audio, TranscriptionOptions(use_itn=False))
    engine.transcribe(audio, TranscriptionOptions())
    assert seen[0]["use_itn"] is False and "use_itn" not in seen[1]
