"""The fsmn-vad network (FunASR's FSMN encoder) as two small scorers: numpy and onnxruntime.

The network is tiny (1.7 MB, 24 tensors): two affine layers, four FSMN blocks (a projection, a
causal depthwise filter over the last `lorder` frames, an affine layer, ReLU), two affine
layers and a softmax. In numpy it takes about 60 lines and 2 MB of memory; onnxruntime costs a
process 25-40 MB (library, environment, session) to run the same thing, which is the whole
margin a Whisper worker has over the bare decoder. So numpy is the default; onnxruntime runs
FunASR's own ONNX export of the same weights and is kept to cross-check it (tests) and for
anyone who prefers it.

Both take features `(1, frames, 400)` and a cache (per FSMN layer, the last `lorder - 1`
projected frames, so the filter continues across calls) and return softmax scores
`(1, frames, 248)` and the next cache. Frames are causal: scores never depend on later audio.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import EngineError

Cache = list[np.ndarray]


class _TorchFloatStorage:
    """Stands for `torch.FloatStorage` in the pickle: only float32 storages are accepted."""


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    *_ignored: Any) -> np.ndarray:
    item_bytes = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=[s * item_bytes for s in stride])
    return np.array(view, dtype=np.float32)


def load_fsmn_weights(model_pt: Path) -> dict[str, np.ndarray]:
    """The state dict of a torch `model.pt` (zip format) as numpy arrays, without torch.

    The pickle inside may only build float32 tensors and an OrderedDict: anything else it asks
    for is refused, so a tampered file cannot run code (unlike `torch.load` of old).
    """
    allowed = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch", "FloatStorage"): _TorchFloatStorage,
        ("collections", "OrderedDict"): OrderedDict,
    }
    try:
        with zipfile.ZipFile(model_pt) as archive:
            pickled = next(name for name in archive.namelist() if name.endswith("/data.pkl"))
            prefix = pickled[: -len("data.pkl")]

            class _Unpickler(pickle.Unpickler):
                def find_class(self, module: str, name: str) -> Any:
                    if (module, name) not in allowed:
                        raise pickle.UnpicklingError(f"{module}.{name} is not a float32 tensor")
                    return allowed[(module, name)]

                def persistent_load(self, pid: Any) -> np.ndarray:
                    _kind, storage_type, key, _location, numel = pid
                    if storage_type is not _TorchFloatStorage:
                        raise pickle.UnpicklingError("only float32 storages are expected")
                    return np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype="<f4", count=numel)

            state = _Unpickler(io.BytesIO(archive.read(pickled))).load()
    except (OSError, KeyError, StopIteration, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise EngineError(f"cannot read the fsmn-vad weights {model_pt}: {exc}") from exc
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in state.items()}


class NumpyFsmnScorer:
    """FunASR's FSMN encoder (`funasr/models/fsmn_vad_streaming/encoder.py`) in numpy."""

    def __init__(self, model_pt: Path, *, fsmn_layers: int, lorder: int) -> None:
        weights = load_fsmn_weights(model_pt)
        try:
            def affine(prefix: str) -> tuple[np.ndarray, np.ndarray]:
                return weights[f"{prefix}.linear.weight"].T.copy(), weights[f"{prefix}.linear.bias"]

            self._inputs = [affine("encoder.in_linear1"), affine("encoder.in_linear2")]
            self._outputs = [affine("encoder.out_linear1"), affine("encoder.out_linear2")]
            self._blocks = []
            for layer in range(fsmn_layers):
                prefix = f"encoder.fsmn.{layer}"
                taps = weights[f"{prefix}.fsmn_block.conv_left.weight"]  # (proj, 1, lorder, 1)
                self._blocks.append((
                    weights[f"{prefix}.linear.linear.weight"].T.copy(),
                    taps[:, 0, :, 0].T.copy(),  # (lorder, proj): tap k weighs frame t - (lorder - 1) + k
                    *affine(f"{prefix}.affine"),
                ))
        except KeyError as exc:
            raise EngineError(f"{model_pt} is not an fsmn-vad model: it lacks {exc}") from exc
        self._lorder = lorder
        self._proj_dim = self._blocks[0][1].shape[1]

    def new_cache(self) -> Cache:
        return [np.zeros((self._lorder - 1, self._proj_dim), dtype=np.float32) for _ in self._blocks]

    def __call__(self, feats: np.ndarray, cache: Cache) -> tuple[np.ndarray, Cache]:
        x = feats[0]
        for weight, bias in self._inputs:
            x = x @ weight + bias
        x = np.maximum(x, 0.0)
        next_cache = []
        for (projection, taps, weight, bias), history in zip(self._blocks, cache, strict=True):
            projected = x @ projection
            frames = projected.shape[0]
            window = np.concatenate((history, projected))
            filtered = projected.copy()  # the block's residual connection
            for tap in range(self._lorder):
                filtered += taps[tap] * window[tap:tap + frames]
            next_cache.append(window[-(self._lorder - 1):].copy())
            x = np.maximum(filtered @ weight + bias, 0.0)
        for weight, bias in self._outputs:
            x = x @ weight + bias
        x = np.exp(x - x.max(axis=1, keepdims=True))
        x /= x.sum(axis=1, keepdims=True)
        return x[np.newaxis].astype(np.float32, copy=False), next_cache


class OnnxFsmnScorer:
    """FunASR's ONNX export of the same network (`model.onnx`) on onnxruntime."""

    def __init__(self, model_onnx: Path, *, fsmn_layers: int, lorder: int, proj_dim: int, cpu_threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, cpu_threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = False  # the arena would keep the largest call's peak for good
        self._session = onnxruntime.InferenceSession(str(model_onnx), sess_options=options,
                                                     providers=["CPUExecutionProvider"])
        self._input_names = [item.name for item in self._session.get_inputs()]
        self._output_names = [item.name for item in self._session.get_outputs()]
        self._cache_shape = (1, proj_dim, lorder - 1, 1)
        self._fsmn_layers = fsmn_layers

    def new_cache(self) -> Cache:
        return [np.zeros(self._cache_shape, dtype=np.float32) for _ in range(self._fsmn_layers)]

    def __call__(self, feats: np.ndarray, cache: Cache) -> tuple[np.ndarray, Cache]:
        outputs = self._session.run(self._output_names, dict(zip(self._input_names, [feats, *cache], strict=True)))
        return outputs[0], list(outputs[1:])
