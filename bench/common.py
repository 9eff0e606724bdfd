"""Shared set-up for the benchmarks: generated speech with known text and a live stack."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.servers import run_redis
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording, synthesize

CACHE_DIR = Path(tempfile.gettempdir()) / "oddasr-bench-audio"


def long_files(count: int, sentences_each: int) -> list[Path]:
    """`count` recordings of about `sentences_each` x 4 s of speech with pauses."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        texts = [REFERENCE_SENTENCES[(index + k) % len(REFERENCE_SENTENCES)] for k in range(sentences_each)]
        files.append(make_long_recording(texts, CACHE_DIR / f"long-{index}-{sentences_each}.wav", gap_s=0.8))
    return files


def sentence_clips(count: int) -> list[Path]:
    """Short utterances of about 1-2 s, the size of a one-sentence request."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    phrases = ["turn on the lights", "what time is it", "call my mother", "play some music", "stop the timer",
               "open the door", "good morning", "read my messages"]
    return [synthesize(phrases[i % len(phrases)], CACHE_DIR / f"sentence-{i % len(phrases)}.wav", speed_wpm=180)
            for i in range(count)]


def timed(action: Callable[[], object]) -> float:
    started_s = time.perf_counter()
    action()
    return time.perf_counter() - started_s


def median_ms(values_s: list[float]) -> float:
    return statistics.median(values_s) * 1000.0


__all__ = ["long_files", "median_ms", "run_redis", "sentence_clips", "timed"]
