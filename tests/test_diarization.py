"""Speaker labels: the clustering and voting (pure), and the real encoder on a dialogue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.audio import decode_16k_mono
from shared.config import Settings
from shared.transcript import Segment
from tests.support.speech import REFERENCE_SENTENCES, make_dialogue, speaker_accuracy
from worker.engines.base import TranscriptionOptions
from worker.engines.diarization import SpeakerWindow, cluster, label_segments, speech_windows
from worker.engines.registry import load_engine


def unit(vector: list[float]) -> np.ndarray:
    array = np.array(vector, dtype=float)
    return array / np.linalg.norm(array)


def test_windows_cover_each_span_with_overlap() -> None:
    windows = speech_windows([(0, 1000), (2000, 5000)])
    assert windows[0] == (0, 1000)
    assert windows[1][0] == 2000 and windows[-1][1] == 5000
    assert all(end - start <= 1500 for start, end in windows)


def test_cluster_estimates_the_count_and_numbers_by_first_appearance() -> None:
    a, b = unit([1, 0, 0]), unit([0, 1, 0])
    embeddings = np.stack([b, b * 0.99 + a * 0.01, a, b, a])
    assert cluster(embeddings, None, None).tolist() == [0, 0, 1, 0, 1]
    assert cluster(embeddings[:1], None, None).tolist() == [0]
    assert cluster(np.zeros((0, 3)), None, None).tolist() == []


def test_bounds_force_the_count() -> None:
    a, near_a = unit([1, 0, 0]), unit([1, 0.05, 0])
    same_voice = np.stack([a, near_a, a, near_a])
    assert set(cluster(same_voice, 2, 2).tolist()) == {0, 1}
    three = np.stack([unit([1, 0, 0]), unit([0, 1, 0]), unit([0, 0, 1])])
    assert cluster(three, None, 1).tolist() == [0, 0, 0]


def test_segments_take_the_speaker_with_the_most_overlap() -> None:
    windows = [SpeakerWindow(0, 1500, 0), SpeakerWindow(750, 2250, 1), SpeakerWindow(1500, 3000, 1)]
    segments = [Segment(start_s=0.0, end_s=1.0, text="a"), Segment(start_s=1.2, end_s=3.0, text="b"),
                Segment(start_s=9.0, end_s=9.5, text="c")]
    assert [s.speaker for s in label_segments(segments, windows)] == [0, 1, 1]
    assert label_segments(segments, []) == segments


@pytest.fixture(scope="module")
def dialogue(speech_dir: Path) -> tuple[Path, list[tuple[float, float, int]]]:
    return make_dialogue(REFERENCE_SENTENCES, speech_dir / "dialogue.wav")


def test_whisper_engine_labels_a_two_voice_dialogue(tmp_path: Path, dialogue) -> None:  # type: ignore[no-untyped-def]
    import os

    path, turns = dialogue
    engine = load_engine(Settings(data_dir=tmp_path, whisper_model="tiny.en", cpu_threads=2, whisper_beam_size=1,
                                  model_cache_dir=Path(os.environ["ODDASR_TEST_MODEL_CACHE"])))
    audio = decode_16k_mono(path)
    transcript = engine.transcribe(audio, TranscriptionOptions(diarize=True))
    labelled = [(s.start_s, s.end_s, s.speaker) for s in transcript.segments]
    assert {s.speaker for s in transcript.segments} == {0, 1}
    assert speaker_accuracy(turns, labelled) > 0.85
    forced_one = engine.transcribe(audio, TranscriptionOptions(diarize=True, max_speakers=1))
    assert {s.speaker for s in forced_one.segments} == {0}
    plain = engine.transcribe(audio, TranscriptionOptions())
    assert all(s.speaker is None for s in plain.segments)


def test_speaker_accuracy_scoring() -> None:
    turns = [(0.0, 1.0, 0), (1.0, 2.0, 1)]
    assert speaker_accuracy(turns, [(0.0, 1.0, 5), (1.0, 2.0, 7)]) == pytest.approx(1.0)
    assert speaker_accuracy(turns, [(0.0, 2.0, 0)]) == pytest.approx(0.5)
