"""Moonshine base, the live finals' model: built once from the pinned wheel into the model
cache, checked at every load, refused when the build drifts; and a Moonshine session's finals
come from it while its partials stay tiny's."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile

from shared.config import Settings
from shared.errors import EngineError
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from tests.support.stream_feed import feed
from worker.engines import moonshine_base
from worker.engines.base import StreamOptions
from worker.engines.fsmn_vad_lite import FsmnVadLite
from worker.engines.model_files import resolve_vad_model_dir
from worker.engines.moonshine_model import MoonshineModel
from worker.engines.moonshine_stream import MoonshineStreamEngine

SENTENCES = [REFERENCE_SENTENCES[1], REFERENCE_SENTENCES[4]]


def clean(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


@pytest.fixture(scope="module")
def cache_dir() -> Path:
    """The suite's shared model cache: the stream workers of the stack tests load the same build."""
    return Path(os.environ["ODDASR_TEST_MODEL_CACHE"])


@pytest.fixture(scope="module")
def base(cache_dir: Path) -> MoonshineModel:
    return moonshine_base.load_moonshine_base(cache_dir)


@pytest.fixture(scope="module")
def recording(speech_dir: Path) -> np.ndarray:
    samples, rate = soundfile.read(make_long_recording(SENTENCES, speech_dir / "moonshine-base-two.wav", gap_s=1.2),
                                   dtype="float32")
    assert rate == 16000
    return samples


def test_the_built_base_model_transcribes_speech(base: MoonshineModel, recording: np.ndarray) -> None:
    assert base.model_name == "moonshine-base-en"
    text = base.decode(recording)
    assert jiwer.wer(clean(" ".join(SENTENCES)), clean(text)) <= 0.2, text


@pytest.mark.slow
def test_a_tampered_build_is_built_again(cache_dir: Path, tmp_path: Path, base: MoonshineModel) -> None:
    """The manifest's sha256 are checked at every load: a changed byte is not loaded."""
    built = moonshine_base.built_moonshine_base(tmp_path)
    manifest = json.loads((built / moonshine_base.MANIFEST_NAME).read_text())
    decoder = built / "decoder_model_merged.onnx"
    with decoder.open("r+b") as handle:
        handle.seek(4096)
        byte = handle.read(1)
        handle.seek(4096)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert moonshine_base.built_moonshine_base(tmp_path) == built
    assert json.loads((built / moonshine_base.MANIFEST_NAME).read_text()) == manifest
    assert moonshine_base.sha256_of(decoder) == manifest["sha256"]["decoder_model_merged.onnx"]


def test_a_cache_built_by_older_steps_is_built_again(cache_dir: Path, base: MoonshineModel, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache whose files are whole but were built by an older recipe (the first one left the
    output projection float: a third slower) is not loaded as it is."""
    built = tmp_path / moonshine_base.BUILT_DIR_NAME
    source = cache_dir / moonshine_base.BUILT_DIR_NAME
    built.mkdir()
    recorded = json.loads((source / moonshine_base.MANIFEST_NAME).read_text())
    for name in recorded["sha256"]:
        try:
            os.link(source / name, built / name)
        except OSError:  # another filesystem
            shutil.copy2(source / name, built / name)

    class Rebuilt(Exception):
        pass

    def build(source: Path, building: Path) -> None:
        raise Rebuilt

    monkeypatch.setattr(moonshine_base, "_build", build)
    for manifest in ({**recorded, "recipe": moonshine_base.BUILD_RECIPE - 1},  # only the recipe differs
                     recorded["sha256"],  # recipe 1's manifest: the digests alone
                     {**recorded, "sha256": {"tokenizer.bin": recorded["sha256"]["tokenizer.bin"]}}):  # files left out
        (built / moonshine_base.MANIFEST_NAME).write_text(json.dumps(manifest))
        with pytest.raises(Rebuilt):
            moonshine_base.built_moonshine_base(tmp_path, build_in_child=False)
    (built / moonshine_base.MANIFEST_NAME).write_text(json.dumps(recorded)[:40])  # torn
    with pytest.raises(Rebuilt):
        moonshine_base.built_moonshine_base(tmp_path, build_in_child=False)
    (built / moonshine_base.MANIFEST_NAME).write_text(json.dumps(recorded))
    assert moonshine_base.built_moonshine_base(tmp_path, build_in_child=False) == built


def test_every_matmul_of_the_built_decoder_is_int8(cache_dir: Path, base: MoonshineModel) -> None:
    """The output projection reads the token embedding through a Transpose inside the decoder's
    branches: left there, the quantizer saw no weight and kept its 416 x 32768 MatMul float."""
    import onnx

    model = onnx.load(str(cache_dir / moonshine_base.BUILT_DIR_NAME / "decoder_model_merged.onnx"))

    def float_matmuls(graph: onnx.GraphProto) -> list[str]:
        """MatMuls reading a weight matrix, or one transposed, in float (the rotary embedding's
        26 frequencies are no weight matrix)."""
        found = []
        for node in graph.node:
            if node.op_type == "Transpose" and node.input[0] in weights:
                weights.add(node.output[0])
            if node.op_type == "MatMul" and any(name in weights for name in node.input):
                found.append(node.name)
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    found += float_matmuls(attribute.g)
        return found

    weights = {item.name for item in model.graph.initializer if math.prod(item.dims) >= 65536}
    assert float_matmuls(model.graph) == []
    assert "model.decoder.embed_tokens.weight_transposed_quantized" in weights


@pytest.mark.slow
def test_a_build_that_drifts_from_the_shipped_model_is_refused(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Quantizing the encoder's Conv layers too (as quantize_dynamic's defaults do) put its
    output 79 % off and made base return no text: the build must fail, not serve that."""
    from onnxruntime import quantization

    real = quantization.quantize_dynamic

    def with_conv(*args: object, **kwargs: object) -> None:
        kwargs["op_types_to_quantize"] = ["MatMul", "Conv"]
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(quantization, "quantize_dynamic", with_conv)
    with pytest.raises(EngineError, match="differs from the shipped one"):
        moonshine_base.built_moonshine_base(tmp_path, build_in_child=False)  # the patch is in this process
    assert not (tmp_path / moonshine_base.BUILT_DIR_NAME).exists()
    assert [path.name for path in tmp_path.iterdir() if not path.name.endswith(".lock")] == []


def test_a_build_that_fails_in_its_child_process_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The build runs in a child process (its 1 GB peak is not kept by the worker): its error
    comes back as the worker's, and nothing half-built is left."""
    source = tmp_path / "shipped"
    source.mkdir()
    (source / "encoder_model.ort").write_bytes(b"not a model")
    cache = tmp_path / "cache"
    monkeypatch.setattr(moonshine_base, "shipped_dir", lambda: source)
    with pytest.raises(EngineError, match="building Moonshine base failed: .*ORT model verification failed"):
        moonshine_base.built_moonshine_base(cache)
    assert [path.name for path in cache.iterdir()] == [f".{moonshine_base.BUILT_DIR_NAME}.lock"]


def test_a_build_that_hangs_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stream worker of the host waits on the build's lock: a hung build must end."""
    monkeypatch.setattr(moonshine_base, "BUILD_TIMEOUT_S", 0.05)
    with pytest.raises(EngineError, match="took over 0 s; stopped"):
        moonshine_base._build_in_child(moonshine_base.shipped_dir(), tmp_path)


class _Marked:
    """A final model that says who decoded."""

    model_name = "marked"

    def decode(self, clip: np.ndarray) -> str:
        return "decoded by the final model"


def test_finals_come_from_the_final_model_and_partials_from_tiny(recording: np.ndarray) -> None:
    engine = MoonshineStreamEngine(MoonshineModel(), FsmnVadLite(resolve_vad_model_dir(""), max_end_silence_ms=800),
                                   final_model=_Marked())  # type: ignore[arg-type]
    assert engine.model_name == "moonshine-tiny-en+marked"
    events = feed(engine.open_stream(StreamOptions(language="en")), recording, 1600)
    finals = [event.text for event in events if event.kind == "final"]
    partials = [event.text for event in events if event.kind == "partial"]
    assert finals == ["decoded by the final model"] * 2
    assert partials and all("final model" not in text for text in partials)


def test_the_default_live_engine_decodes_finals_with_base(cache_dir: Path) -> None:
    from worker.engines.registry import LIVE_ONLY_ENGINES

    settings = Settings(model_cache_dir=cache_dir)
    assert settings.moonshine_finals_model == "base"
    assert LIVE_ONLY_ENGINES["moonshine"](settings, None).model_name == "moonshine-tiny-en+moonshine-base-en"
    tiny_only = Settings(model_cache_dir=cache_dir, moonshine_finals_model="tiny")
    assert LIVE_ONLY_ENGINES["moonshine"](tiny_only, None).model_name == "moonshine-tiny-en"
