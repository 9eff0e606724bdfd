"""Speech segmentation with FunASR's real fsmn-vad model, and chunking for the decoder.

Whisper decodes 30 s windows; given a long file in one call it can skip audio. Cutting at
the VAD's speech boundaries and merging neighbours up to `max_chunk_s` keeps every word and
gives each decode a full, natural window.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

import numpy as np

from worker.engines.base import SAMPLE_RATE_HZ

logger = logging.getLogger(__name__)


def restore_process_settings(
    cpu_threads: int, saved_log_levels: dict[str, int], saved_root_handlers: list[logging.Handler] | None = None
) -> None:
    """FunASR sets torch's thread count and the root log level for the whole process: undo it.

    Importing funasr in a process whose logging is not configured yet also hangs a stderr
    handler on the root logger (basicConfig); pass the handlers seen before the import to
    drop it, so the service's own logging setup stays the only one.
    """
    import torch

    torch.set_num_threads(cpu_threads if cpu_threads > 0 else (os.cpu_count() or 1))
    for name, level in saved_log_levels.items():
        logging.getLogger(name or None).setLevel(level)
    if saved_root_handlers is not None:
        for handler in list(logging.root.handlers):
            if handler not in saved_root_handlers:
                logging.root.removeHandler(handler)


def current_log_levels() -> dict[str, int]:
    names = ["", *logging.root.manager.loggerDict]
    return {name: logging.getLogger(name or None).level for name in names}


class FsmnVad:
    """The fsmn-vad model loaded once; `segments_ms` returns speech spans in milliseconds.

    Through FunASR and torch: the reference that `fsmn_vad_lite.FsmnVadLite` (what the Whisper
    engine runs, without torch) is tested and benchmarked against.
    """

    def __init__(self, model_dir: Path, *, max_end_silence_ms: int, cpu_threads: int) -> None:
        saved_levels = current_log_levels()
        saved_handlers = list(logging.root.handlers)
        # funasr prints to stdout on import (an ffmpeg notice) and on every AutoModel (its
        # version): keep that out of a worker's stdout, but in the log for whoever debugs.
        with contextlib.redirect_stdout(io.StringIO()) as chatter:
            from funasr import AutoModel

            # disable_update: without it every construction asks PyPI for a newer funasr, with
            # no timeout, and hangs where the network drops packets.
            self._model = AutoModel(
                model=str(model_dir), disable_update=True, device="cpu", disable_pbar=True, disable_log=True,
                max_end_silence_time=max_end_silence_ms,
            )
        restore_process_settings(cpu_threads, saved_levels, saved_handlers)
        logger.debug("funasr said while loading the VAD: %s", chatter.getvalue().strip())
        self.model_dir = model_dir

    def segments_ms(self, audio: np.ndarray) -> list[tuple[int, int]]:
        if audio.size < SAMPLE_RATE_HZ // 10:
            return []
        result = self._model.generate(input=audio, disable_pbar=True)
        spans = result[0]["value"] if result else []
        return [(int(start), int(end)) for start, end in spans if end > start]


def merge_into_chunks(
    segments_ms: list[tuple[int, int]], *, max_chunk_s: float, pad_ms: int, audio_ms: int
) -> list[tuple[int, int]]:
    """Group consecutive speech spans into chunks of at most `max_chunk_s`.

    Each span is padded by `pad_ms` on both sides (clipped to the audio), a span longer than
    the maximum is split at the maximum, and a chunk never crosses into the next one, so
    every millisecond of speech lands in exactly one chunk.
    """
    max_chunk_ms = int(max_chunk_s * 1000)
    chunks: list[tuple[int, int]] = []
    for raw_start, raw_end in sorted(segments_ms):
        start = max(0, raw_start - pad_ms)
        end = min(audio_ms, raw_end + pad_ms)
        if chunks and start < chunks[-1][1]:
            start = chunks[-1][1]  # padding must not overlap the previous chunk
        if end <= start:
            continue
        if chunks and end - chunks[-1][0] <= max_chunk_ms and start - chunks[-1][1] <= pad_ms * 2 + 2000:
            chunks[-1] = (chunks[-1][0], end)
            continue
        while end - start > max_chunk_ms:
            chunks.append((start, start + max_chunk_ms))
            start += max_chunk_ms
        chunks.append((start, end))
    return chunks
