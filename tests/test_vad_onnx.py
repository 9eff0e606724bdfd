"""fsmn-vad on onnxruntime against FunASR's own torch path, on the same real weights.

The torch path (`FsmnVad`, FunASR's `AutoModel`) is the reference: file segments and online
events of the ONNX path must match it on generated speech, fed in 60 ms and 600 ms chunks,
and a stream's memory must stay flat over a 30-minute session.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from shared.audio import decode_16k_mono
from tests.support.speech import REFERENCE_SENTENCES, make_dialogue, make_long_recording
from worker.engines.fsmn_vad import FsmnVad
from worker.engines.model_files import resolve_vad_model_dir
from worker.engines.vad_onnx import OnnxFsmnVad, spans_from_events

MAX_END_SILENCE_MS = 800
#: Allowed difference of a boundary between the two runtimes. Measured: 0 ms on every
#: recording here; the slack only absorbs a float rounding that flips one 10 ms frame.
TOLERANCE_MS = 100
SAMPLES_PER_MS = 16

Events = list[tuple[int, int]]


@pytest.fixture(scope="module")
def onnx_vad() -> OnnxFsmnVad:
    return OnnxFsmnVad(resolve_vad_model_dir(""), max_end_silence_ms=MAX_END_SILENCE_MS, cpu_threads=1)


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


def onnx_online(onnx_vad: OnnxFsmnVad, audio: np.ndarray, chunk_ms: int) -> Events:
    stream = onnx_vad.open_stream()
    return feed(lambda chunk, is_final: stream.accept(chunk, is_final=is_final), audio, chunk_ms)


def assert_close(actual: Events, expected: Events) -> None:
    assert len(actual) == len(expected), (actual, expected)
    for (start, end), (ref_start, ref_end) in zip(actual, expected, strict=True):
        assert (start == -1) == (ref_start == -1) and (end == -1) == (ref_end == -1), (actual, expected)
        assert abs(start - ref_start) <= TOLERANCE_MS and abs(end - ref_end) <= TOLERANCE_MS, (actual, expected)


def test_file_segments_match_the_torch_path(
    onnx_vad: OnnxFsmnVad, torch_vad: FsmnVad, recordings: dict[str, np.ndarray]
) -> None:
    for name, audio in recordings.items():
        expected = torch_vad.segments_ms(audio)
        assert expected, name
        assert onnx_vad.segments_ms(audio) == expected, name


@pytest.mark.parametrize("chunk_ms", [60, 600])
def test_online_events_match_the_torch_online_path(
    onnx_vad: OnnxFsmnVad, torch_vad: FsmnVad, recordings: dict[str, np.ndarray], chunk_ms: int
) -> None:
    for name, audio in recordings.items():
        expected = torch_online(torch_vad, audio, chunk_ms)
        actual = onnx_online(onnx_vad, audio, chunk_ms)
        assert_close(actual, expected)
        # and the events, joined, are the file's segments
        assert spans_from_events(actual) == onnx_vad.segments_ms(audio), name


def test_events_of_one_sentence_per_second_of_silence(onnx_vad: OnnxFsmnVad, recordings: dict[str, np.ndarray]) -> None:
    """Four sentences with 1 s gaps: four starts, four ends, in order, inside the audio."""
    events = onnx_online(onnx_vad, recordings["four sentences"], 60)
    assert [start >= 0 for start, _ in events] == [True, False] * 4
    assert [end >= 0 for _, end in events] == [False, True] * 4
    spans = spans_from_events(events)
    assert all(b_start - a_end >= 500 for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))
    assert spans[-1][1] <= recordings["four sentences"].size // SAMPLES_PER_MS


def test_a_stream_ended_mid_speech_closes_its_segment(onnx_vad: OnnxFsmnVad, recordings: dict[str, np.ndarray]) -> None:
    stream = onnx_vad.open_stream()
    audio = recordings["cut mid-speech"]
    events = stream.accept(audio)
    assert events == [(0, -1)]
    closing = stream.accept(np.zeros(0, dtype=np.float32), is_final=True)
    assert len(closing) == 1 and closing[0][0] == -1 and closing[0][1] > 1500
    # after the final call the stream starts over at time 0
    assert stream.accept(audio, is_final=True) == [(0, closing[0][1])]


def test_odd_inputs(onnx_vad: OnnxFsmnVad) -> None:
    stream = onnx_vad.open_stream()
    assert stream.accept(np.zeros(0, dtype=np.float32)) == []
    assert stream.accept(np.zeros(0, dtype=np.float32), is_final=True) == []
    assert stream.accept(np.zeros(100, dtype=np.float32), is_final=True) == []  # under one frame
    silence = np.zeros(16000 * 3, dtype=np.float32)
    assert feed(lambda chunk, is_final: stream.accept(chunk, is_final=is_final), silence, 60) == []
    assert onnx_vad.segments_ms(silence) == []
    assert onnx_vad.segments_ms(np.zeros(800, dtype=np.float32)) == []


def test_a_30_minute_stream_holds_constant_memory(onnx_vad: OnnxFsmnVad, recordings: dict[str, np.ndarray]) -> None:
    """Half an hour of speech in 600 ms chunks: what the stream keeps never grows, and the
    FSMN cache keeps its fixed shape (19 frames per layer), so a long session costs nothing more."""
    audio = recordings["four sentences"]
    chunk = 600 * SAMPLES_PER_MS
    stream = onnx_vad.open_stream()
    largest: dict[str, int] = {}
    spans = 0
    fed_samples = 0
    position = 0
    started = time.perf_counter()
    while fed_samples < 30 * 60 * 16000:
        piece = audio[position:position + chunk]
        if piece.size < chunk:
            piece = np.concatenate((piece, audio[: chunk - piece.size]))
        position = (position + chunk) % audio.size
        spans += sum(1 for _, end in stream.accept(piece) if end >= 0)
        fed_samples += chunk
        for key, value in stream.held_items().items():
            largest[key] = max(largest.get(key, 0), value)
    calls = fed_samples // chunk
    per_call_ms = (time.perf_counter() - started) * 1000 / calls
    assert spans >= 30 * 60 / audio.size * 16000 * 4 * 0.95  # it kept finding the sentences
    assert largest["samples"] < chunk + 1000
    assert largest["decibel_frames"] <= 60
    assert largest["segments"] <= 2
    assert largest["frontend_samples"] < 400
    assert [c.shape for c in stream._cache] == [(1, 128, 19, 1)] * 4
    assert per_call_ms < 50, per_call_ms


def test_streams_are_independent_across_threads(onnx_vad: OnnxFsmnVad, recordings: dict[str, np.ndarray]) -> None:
    """One model, several streams, each used from its own thread: same events as alone."""
    names = ["four sentences", "dialogue", "in noise"]
    alone = {name: onnx_online(onnx_vad, recordings[name], 60) for name in names}
    together: dict[str, Events] = {}

    def run(name: str) -> None:
        together[name] = onnx_online(onnx_vad, recordings[name], 60)

    threads = [threading.Thread(target=run, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone


def test_the_onnx_path_imports_neither_torch_nor_funasr(tmp_path: Path) -> None:
    """What a Whisper or stream worker gains: the VAD loads and runs without torch."""
    code = (
        "import logging, sys, numpy as np\n"
        "from worker.engines.model_files import resolve_vad_model_dir\n"
        "from worker.engines.vad_onnx import OnnxFsmnVad\n"
        "vad = OnnxFsmnVad(resolve_vad_model_dir(''), max_end_silence_ms=800, cpu_threads=1)\n"
        "vad.open_stream().accept(np.zeros(16000, dtype=np.float32), is_final=True)\n"
        "assert vad.segments_ms(np.zeros(16000, dtype=np.float32)) == []\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'funasr'))\n"
        "assert not heavy, heavy\n"
        "assert logging.getLogger().handlers == [] and logging.getLogger().level == logging.WARNING\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)
