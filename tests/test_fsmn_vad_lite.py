"""fsmn-vad without torch (numpy, and onnxruntime) against FunASR's own torch path.

The torch path (`FsmnVad`, FunASR's `AutoModel`) is the reference: file segments and online
events of both torch-free runtimes must match it on generated speech, fed in 60 ms and 600 ms
chunks, and a stream's memory must stay flat over a 30-minute session. Its speed per call
is a benchmark (`bench/vad_stream.py`), not a test.
"""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from shared.audio import decode_16k_mono
from shared.errors import EngineError
from tests.support.speech import REFERENCE_SENTENCES, make_dialogue, make_long_recording
from worker.engines.fsmn_scorer import NumpyFsmnScorer, OnnxFsmnScorer, load_fsmn_weights
from worker.engines.fsmn_vad import FsmnVad
from worker.engines.fsmn_vad_lite import FsmnVadLite, spans_from_events
from worker.engines.model_files import resolve_vad_model_dir

MAX_END_SILENCE_MS = 800
#: Allowed difference of a boundary between the two runtimes. Measured: 0 ms on every
#: recording here; the slack only absorbs a float rounding that flips one 10 ms frame.
TOLERANCE_MS = 100
SAMPLES_PER_MS = 16

Events = list[tuple[int, int]]


@pytest.fixture(scope="module", params=["numpy", "onnx"])
def lite_vad(request: pytest.FixtureRequest) -> FsmnVadLite:
    return FsmnVadLite(resolve_vad_model_dir(""), max_end_silence_ms=MAX_END_SILENCE_MS, runtime=request.param)


@pytest.fixture(scope="module")
def torch_vad() -> FsmnVad:
    return FsmnVad(resolve_vad_model_dir(""), max_end_silence_ms=MAX_END_SILENCE_MS, cpu_threads=1)


@pytest.fixture(scope="module")
def recordings(speech_dir: Path) -> dict[str, np.ndarray]:
    """Sentences with 1 s gaps, a two-voice dialogue, a clip cut mid-word, the same in noise."""
    four = decode_16k_mono(make_long_recording(REFERENCE_SENTENCES[:4], speech_dir / "vad-onnx-4.wav", gap_s=1.0))
    dialogue_path, _ = make_dialogue(REFERENCE_SENTENCES[4:8], speech_dir / "vad-onnx-dialogue.wav")
    noise = np.random.default_rng(7).normal(0, 0.01, four.size).astype(np.float32)
    found = {
        "four sentences": four,
        "dialogue": decode_16k_mono(dialogue_path),
        "cut mid-speech": four[: int(2.0 * 16000)],
        "in noise": four + noise,
    }
    spec = importlib.util.find_spec("fasr")
    if spec is not None and spec.submodule_search_locations:
        clip = Path(next(iter(spec.submodule_search_locations))) / "asset" / "example" / "asr_example.wav"
        found["mandarin"] = decode_16k_mono(clip)
    return found


def feed(stream_accept, audio: np.ndarray, chunk_ms: int) -> Events:  # type: ignore[no-untyped-def]
    step = chunk_ms * SAMPLES_PER_MS
    count = max(1, -(-audio.size // step))
    events: Events = []
    for index in range(count):
        events.extend(stream_accept(audio[index * step:(index + 1) * step], index == count - 1))
    return events


def torch_online(torch_vad: FsmnVad, audio: np.ndarray, chunk_ms: int) -> Events:
    """FunASR's own streaming call, as its docs give it: one cache dict per stream."""
    cache: dict = {}
    model = torch_vad._model

    def accept(chunk: np.ndarray, is_final: bool) -> Events:
        result = model.generate(input=chunk, cache=cache, is_final=is_final, chunk_size=chunk_ms,
                                disable_pbar=True, max_end_silence_time=MAX_END_SILENCE_MS)
        return [(int(start), int(end)) for start, end in result[0]["value"]]

    return feed(accept, audio, chunk_ms)


def lite_online(lite_vad: FsmnVadLite, audio: np.ndarray, chunk_ms: int) -> Events:
    stream = lite_vad.open_stream()
    return feed(lambda chunk, is_final: stream.accept(chunk, is_final=is_final), audio, chunk_ms)


def assert_close(actual: Events, expected: Events) -> None:
    assert len(actual) == len(expected), (actual, expected)
    for (start, end), (ref_start, ref_end) in zip(actual, expected, strict=True):
        assert (start == -1) == (ref_start == -1) and (end == -1) == (ref_end == -1), (actual, expected)
        assert abs(start - ref_start) <= TOLERANCE_MS and abs(end - ref_end) <= TOLERANCE_MS, (actual, expected)


def test_file_segments_match_the_torch_path(
    lite_vad: FsmnVadLite, torch_vad: FsmnVad, recordings: dict[str, np.ndarray]
) -> None:
    for name, audio in recordings.items():
        expected = torch_vad.segments_ms(audio)
        assert expected, name
        assert lite_vad.segments_ms(audio) == expected, name


@pytest.mark.parametrize("chunk_ms", [60, 600])
def test_online_events_match_the_torch_online_path(
    lite_vad: FsmnVadLite, torch_vad: FsmnVad, recordings: dict[str, np.ndarray], chunk_ms: int
) -> None:
    for name, audio in recordings.items():
        expected = torch_online(torch_vad, audio, chunk_ms)
        actual = lite_online(lite_vad, audio, chunk_ms)
        assert_close(actual, expected)
        # and the events, joined, are the file's segments
        assert spans_from_events(actual) == lite_vad.segments_ms(audio), name


def test_events_of_one_sentence_per_second_of_silence(lite_vad: FsmnVadLite, recordings: dict[str, np.ndarray]) -> None:
    """Four sentences with 1 s gaps: four starts, four ends, in order, inside the audio."""
    events = lite_online(lite_vad, recordings["four sentences"], 60)
    assert [start >= 0 for start, _ in events] == [True, False] * 4
    assert [end >= 0 for _, end in events] == [False, True] * 4
    spans = spans_from_events(events)
    assert all(b_start - a_end >= 500 for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))
    assert spans[-1][1] <= recordings["four sentences"].size // SAMPLES_PER_MS


def test_a_stream_ended_mid_speech_closes_its_segment(lite_vad: FsmnVadLite, recordings: dict[str, np.ndarray]) -> None:
    stream = lite_vad.open_stream()
    audio = recordings["cut mid-speech"]
    events = stream.accept(audio)
    assert events == [(0, -1)]
    closing = stream.accept(np.zeros(0, dtype=np.float32), is_final=True)
    assert len(closing) == 1 and closing[0][0] == -1 and closing[0][1] > 1500
    # after the final call the stream starts over at time 0
    assert stream.accept(audio, is_final=True) == [(0, closing[0][1])]


def test_odd_inputs(lite_vad: FsmnVadLite) -> None:
    stream = lite_vad.open_stream()
    assert stream.accept(np.zeros(0, dtype=np.float32)) == []
    assert stream.accept(np.zeros(0, dtype=np.float32), is_final=True) == []
    assert stream.accept(np.zeros(100, dtype=np.float32), is_final=True) == []  # under one frame
    silence = np.zeros(16000 * 3, dtype=np.float32)
    assert feed(lambda chunk, is_final: stream.accept(chunk, is_final=is_final), silence, 60) == []
    assert lite_vad.segments_ms(silence) == []
    assert lite_vad.segments_ms(np.zeros(800, dtype=np.float32)) == []


def test_a_30_minute_stream_holds_constant_memory(lite_vad: FsmnVadLite, recordings: dict[str, np.ndarray]) -> None:
    """Half an hour of speech in 600 ms chunks: what the stream keeps never grows, and the
    FSMN cache keeps its fixed shape (19 frames per layer), so a long session costs nothing more."""
    audio = recordings["four sentences"]
    chunk = 600 * SAMPLES_PER_MS
    stream = lite_vad.open_stream()
    largest: dict[str, int] = {}
    spans = 0
    fed_samples = 0
    position = 0
    while fed_samples < 30 * 60 * 16000:
        piece = audio[position:position + chunk]
        if piece.size < chunk:
            piece = np.concatenate((piece, audio[: chunk - piece.size]))
        position = (position + chunk) % audio.size
        spans += sum(1 for _, end in stream.accept(piece) if end >= 0)
        fed_samples += chunk
        for key, value in stream.held_items().items():
            largest[key] = max(largest.get(key, 0), value)
    assert spans >= 30 * 60 / audio.size * 16000 * 4 * 0.95  # it kept finding the sentences
    assert largest["samples"] < chunk + 1000
    assert largest["decibel_frames"] <= 60
    assert largest["segments"] <= 2
    assert largest["frontend_samples"] < 400
    assert largest["frontend_bytes"] < 16_000  # a few frames, not the latest 600 ms call
    assert all(c.size == 128 * 19 for c in stream._cache) and len(stream._cache) == 4
    # What a call costs is measured by bench/vad_stream.py (goal < 50 ms per 600 ms chunk), not
    # asserted here: a busy machine failed that bound while the VAD was right.


def test_a_large_call_leaves_nothing_large_behind(lite_vad: FsmnVadLite, recordings: dict[str, np.ndarray]) -> None:
    """Between calls a stream holds a few frames of carry-over, whatever the size of the call."""
    stream = lite_vad.open_stream()
    stream.accept(recordings["four sentences"][: 16000 * 10])
    held = stream.held_items()
    assert held["frontend_bytes"] < 16_000 and held["samples"] < 1000, held


def test_streams_are_independent_across_threads(lite_vad: FsmnVadLite, recordings: dict[str, np.ndarray]) -> None:
    """One model, several streams, each used from its own thread: same events as alone."""
    names = ["four sentences", "dialogue", "in noise"]
    alone = {name: lite_online(lite_vad, recordings[name], 60) for name in names}
    together: dict[str, Events] = {}

    def run(name: str) -> None:
        together[name] = lite_online(lite_vad, recordings[name], 60)

    threads = [threading.Thread(target=run, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone


def test_the_default_runtime_imports_neither_torch_nor_funasr_nor_onnxruntime() -> None:
    """What a Whisper or stream worker gains: the VAD loads and runs on numpy alone."""
    code = (
        "import logging, sys, numpy as np\n"
        "from worker.engines.model_files import resolve_vad_model_dir\n"
        "from worker.engines.fsmn_vad_lite import FsmnVadLite\n"
        "vad = FsmnVadLite(resolve_vad_model_dir(''), max_end_silence_ms=800)\n"
        "vad.open_stream().accept(np.zeros(16000, dtype=np.float32), is_final=True)\n"
        "assert vad.segments_ms(np.zeros(16000, dtype=np.float32)) == []\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'funasr', 'onnxruntime'))\n"
        "assert not heavy, heavy\n"
        "assert logging.getLogger().handlers == [] and logging.getLogger().level == logging.WARNING\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)


def test_numpy_and_onnx_score_the_same(recordings: dict[str, np.ndarray]) -> None:
    """The numpy network on `model.pt` and FunASR's ONNX export in `model.onnx`: the same
    scores and the same carried cache, call after call, whatever the call sizes."""
    directory = resolve_vad_model_dir("")
    numpy_scorer = NumpyFsmnScorer(directory / "model.pt", fsmn_layers=4, lorder=20)
    onnx_scorer = OnnxFsmnScorer(directory / "model.onnx", fsmn_layers=4, lorder=20, proj_dim=128, cpu_threads=1)
    rng = np.random.default_rng(3)
    numpy_cache, onnx_cache = numpy_scorer.new_cache(), onnx_scorer.new_cache()
    for frames in (1, 6, 7, 60, 600, 3):
        feats = rng.normal(size=(1, frames, 400)).astype(np.float32)
        numpy_scores, numpy_cache = numpy_scorer(feats, numpy_cache)
        onnx_scores, onnx_cache = onnx_scorer(feats, onnx_cache)
        assert numpy_scores.shape == onnx_scores.shape == (1, frames, 248)
        np.testing.assert_allclose(numpy_scores, onnx_scores, atol=1e-5)
        for ours, theirs in zip(numpy_cache, onnx_cache, strict=True):
            np.testing.assert_allclose(ours, theirs[0, :, :, 0].T, atol=1e-4)


def test_the_weights_loader_builds_tensors_and_nothing_else(tmp_path: Path) -> None:
    weights = load_fsmn_weights(resolve_vad_model_dir("") / "model.pt")
    assert len(weights) == 24 and weights["encoder.in_linear1.linear.weight"].shape == (140, 400)
    evil = tmp_path / "model.pt"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("model/data.pkl", pickle.dumps({"x": print}))  # builtins.print: refused
    with pytest.raises(EngineError, match="cannot read"):
        load_fsmn_weights(evil)
    (tmp_path / "config.yaml").write_text("{}")
    with pytest.raises(EngineError, match="lacks"):
        FsmnVadLite(tmp_path, max_end_silence_ms=800)
