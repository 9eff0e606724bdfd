"""A Whisper worker loads torch only for speaker labels, and refuses them where disabled.

torch and FunASR cost a worker process about 0.5 GB and 6 s at start; a Whisper worker needs
them for nothing but the speaker embedder. These tests run the engine as a worker does and
look at what it imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from api.options import check_supported
from shared.audio import decode_16k_mono
from shared.config import Settings
from shared.engines_catalog import FUNASR, WHISPER
from shared.errors import NotSupportedError
from shared.schemas import JobOptions
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from worker.engines.base import TranscriptionOptions
from worker.engines.registry import load_engine
from worker.engines.whisper_engine import WhisperEngine

ROOT = Path(__file__).resolve().parent.parent

_WORKER_RUN = """
import sys
from pathlib import Path
from shared.audio import decode_16k_mono
from shared.config import Settings
from worker.engines.base import TranscriptionOptions
from worker.engines.registry import load_engine

settings = Settings(data_dir=Path(sys.argv[1]), whisper_model="tiny.en", cpu_threads=2, whisper_beam_size=1,
                    model_cache_dir=Path(sys.argv[2]))
engine = load_engine(settings)
transcript = engine.transcribe(decode_16k_mono(Path(sys.argv[3])), TranscriptionOptions())
assert "report" in transcript.text.lower(), transcript.text
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "funasr", "resemblyzer", "onnxruntime"})
print("HEAVY", ",".join(heavy))
"""


@pytest.fixture(scope="module")
def two_sentences(speech_dir: Path) -> Path:
    return make_long_recording(REFERENCE_SENTENCES[:2], speech_dir / "footprint-2.wav", gap_s=1.0)


def test_a_whisper_worker_transcribes_without_importing_torch(tmp_path: Path, two_sentences: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WORKER_RUN, str(tmp_path), os.environ["ODDASR_TEST_MODEL_CACHE"], str(two_sentences)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0 and "HEAVY \n" in result.stdout, result.stdout + result.stderr


def test_a_worker_without_diarization_refuses_speaker_labels(tmp_path: Path, two_sentences: Path) -> None:
    engine = load_engine(Settings(data_dir=tmp_path, whisper_model="tiny.en", cpu_threads=2, whisper_beam_size=1,
                                  model_cache_dir=Path(os.environ["ODDASR_TEST_MODEL_CACHE"]),
                                  enable_diarization=False))
    assert isinstance(engine, WhisperEngine) and not engine.supports_diarization
    audio = decode_16k_mono(two_sentences)
    with pytest.raises(NotSupportedError, match="ODDASR_ENABLE_DIARIZATION"):
        engine.transcribe(audio, TranscriptionOptions(diarize=True))
    assert engine._embedder is None
    assert "report" in engine.transcribe(audio, TranscriptionOptions()).text.lower()


def test_the_speaker_embedder_loads_on_the_first_diarize_job(tmp_path: Path, two_sentences: Path) -> None:
    engine = load_engine(Settings(data_dir=tmp_path, whisper_model="tiny.en", cpu_threads=2, whisper_beam_size=1,
                                  model_cache_dir=Path(os.environ["ODDASR_TEST_MODEL_CACHE"])))
    assert isinstance(engine, WhisperEngine) and engine.supports_diarization
    audio = decode_16k_mono(two_sentences)
    engine.transcribe(audio, TranscriptionOptions())
    assert engine._embedder is None
    labelled = engine.transcribe(audio, TranscriptionOptions(diarize=True))
    assert engine._embedder is not None
    assert labelled.segments and all(segment.speaker is not None for segment in labelled.segments)
    embedding = engine._embedder(np.zeros(16000, dtype=np.float32))
    assert embedding.shape == (256,)


def test_the_api_refuses_diarize_where_workers_cannot_label_speakers(tmp_path: Path) -> None:
    assert WHISPER.supports_diarization(Settings(data_dir=tmp_path))
    assert not WHISPER.supports_diarization(Settings(data_dir=tmp_path, enable_diarization=False))
    assert WHISPER.word_timestamps
    assert not FUNASR.supports_diarization(Settings(data_dir=tmp_path, engine="funasr"))
    assert FUNASR.supports_diarization(Settings(data_dir=tmp_path, engine="funasr", funasr_spk_model="cam++"))
    check_supported(JobOptions(diarize=True), Settings(data_dir=tmp_path))
    with pytest.raises(NotSupportedError, match="ODDASR_ENABLE_DIARIZATION") as refused:
        check_supported(JobOptions(diarize=True), Settings(data_dir=tmp_path, enable_diarization=False))
    assert refused.value.http_status == 422
    check_supported(JobOptions(), Settings(data_dir=tmp_path, enable_diarization=False))
    with pytest.raises(NotSupportedError, match="ODDASR_FUNASR_SPK_MODEL"):
        check_supported(JobOptions(diarize=True), Settings(data_dir=tmp_path, engine="funasr"))
