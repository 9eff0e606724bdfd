"""Run inside the GPU worker image by `make images-test` (scripts/images/test.sh), where no GPU
exists: every engine library imports, the image's own settings choose CUDA, and the file engine
hands faster-whisper `device="cuda"` with float16 (the constructor is recorded, not run, since
CTranslate2 would ask the driver for a device). What the libraries found is printed as it is.
"""

from __future__ import annotations

import importlib
import sys
from unittest import mock


def main() -> int:
    for name in ("torch", "funasr", "faster_whisper", "ctranslate2", "onnxruntime", "celery"):
        importlib.import_module(name)
    import ctranslate2
    import torch

    from shared.config import load_settings
    from worker.engines.registry import load_engine

    settings = load_settings()
    assert settings.enable_gpu and settings.device == "cuda", (settings.enable_gpu, settings.device)
    assert settings.whisper_compute_type == "float16", settings.whisper_compute_type
    constructed: list[dict] = []

    class RecordedModel:
        def __init__(self, *args: object, **kwargs: object) -> None:
            constructed.append({"args": args, **kwargs})

    with mock.patch("faster_whisper.WhisperModel", RecordedModel), \
            mock.patch("faster_whisper.BatchedInferencePipeline", lambda model: model):
        load_engine(settings)
    assert constructed and constructed[0]["device"] == "cuda", constructed
    assert constructed[0]["compute_type"] == "float16", constructed
    print(  # noqa: T201 (this check reports on stdout what the image found)
          f"gpu image: settings device={settings.device} compute_type={settings.whisper_compute_type} "
          f"batch_size={settings.whisper_batch_size}; WhisperModel(device={constructed[0]['device']!r}, "
          f"compute_type={constructed[0]['compute_type']!r})")
    print(  # noqa: T201 (this check reports on stdout what the image found)
          f"gpu image: torch {torch.__version__} (CUDA build: {torch.version.cuda or 'no'}), "
          f"CUDA devices seen by CTranslate2 {ctranslate2.__version__}: {ctranslate2.get_cuda_device_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
