"""Word times for live finals from engines that give none (Moonshine, FunASR's 2pass).

A light forced alignment without a model, on 10 ms frames of the sentence's audio: each word
should take voiced time in proportion to its syllables, words meet where the audio is quiet
(and, after a comma or a full stop, in a pause), and a word spans no long silence. A dynamic
programme finds the boundaries that fit all of it best; each word then runs from its first
to its last voiced frame. Measured by bench/live_words.py on the moonshine_voice recordings
against Whisper base's own word times: median boundary error 0.13 s for ~40 ms per final on
a busy 2-core machine, where spreading words by syllables alone (0.17 s, under 1 ms) drifts
across pauses, and aligning with Whisper tiny.en's cross-attention (0.14 s) costs a second
per final.

Units are the file path's (`funasr_timestamps.text_units`): a Latin word or a CJK character,
each carrying the punctuation that follows it.
"""

from __future__ import annotations

import re

import numpy as np

from shared.transcript import Word
from worker.engines.base import SAMPLE_RATE_HZ
from worker.engines.funasr_timestamps import text_units, timed_words, unit_texts

FRAME_MS = 10
_FRAME_SAMPLES = SAMPLE_RATE_HZ * FRAME_MS // 1000
#: A frame is voiced when its level is this far from the sentence's floor towards its loud part.
VOICED_SHARE = 0.3
#: How far a word's voiced time may stray from its syllables' share before it costs (a share
#: of that share), and the cost of a boundary in a loud frame, of a full stop or comma's
#: boundary in a voiced one, of 100 ms of silence inside a word.
DURATION_TOLERANCE = 0.6
LOUD_BOUNDARY_COST = 0.5
VOICED_PAUSE_COST = 1.0
INNER_SILENCE_COST = 0.3
#: A word is never longer than this many times its share, or its share and 0.6 s (plus 0.3 s).
MAX_STRETCH = 3.0
_STRETCH_FRAMES = 60
_SLACK_FRAMES = 30
_VOWELS = re.compile(r"[aeiouyäöüàâéèêëîïôûùœæ]+", re.IGNORECASE)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_PAUSE_AFTER = re.compile(r"[,.;:!?，。；：！？、]$")


def syllables(unit: str) -> float:
    """How long a unit takes to say, in syllables (a CJK character is one; digits are said
    as words, about one and a half each)."""
    if _CJK.fullmatch(unit):
        return 1.0
    digits = sum(char.isdigit() for char in unit)
    return max(1.0, len(_VOWELS.findall(unit)) + 1.5 * digits)


def frame_levels_db(clip: np.ndarray) -> np.ndarray:
    """The clip's level per 10 ms frame, in dB."""
    frames = clip[: clip.size // _FRAME_SAMPLES * _FRAME_SAMPLES].reshape(-1, _FRAME_SAMPLES)
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-10)


def align_words(text: str, clip: np.ndarray, clip_start_ms: int, speech_start_ms: int,
                speech_end_ms: int) -> list[Word]:
    """`text`'s words with times on the session clock (seconds), placed in `clip` (which starts
    at `clip_start_ms`) within [speech_start_ms, speech_end_ms]."""
    units = text_units(text)
    if not units:
        return []
    levels = frame_levels_db(clip)
    first = max(0, (speech_start_ms - clip_start_ms) // FRAME_MS)
    last = min(levels.size, -(-(speech_end_ms - clip_start_ms) // FRAME_MS))
    span = levels[first:last]
    if span.size < 2 * len(units):
        return _evenly(text, len(units), speech_start_ms, speech_end_ms)
    floor, loud = np.percentile(span, 10), np.percentile(span, 95)
    loudness = np.clip((span - floor) / max(1e-6, loud - floor), 0.0, 1.0)
    voiced_at = np.flatnonzero(loudness > VOICED_SHARE)
    begin, end = (int(voiced_at[0]), int(voiced_at[-1]) + 1) if voiced_at.size else (0, span.size)
    voiced = loudness[begin:end] > VOICED_SHARE
    if voiced.size < len(units):
        return _evenly(text, len(units), speech_start_ms, speech_end_ms)
    if not voiced.any():
        voiced[:] = True
    pauses_after = [bool(_PAUSE_AFTER.search(piece)) for piece in unit_texts(text)]
    frames = _VoicedFrames(voiced, loudness[begin:end])
    bounds = frames.best_boundaries(np.array([syllables(unit) for unit in units]), pauses_after)
    offset_ms = clip_start_ms + (first + begin) * FRAME_MS
    stamps = [[offset_ms + on * FRAME_MS, offset_ms + off * FRAME_MS]
              for on, off in (frames.voiced_part(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True))]
    return timed_words(text, stamps) or []


def _evenly(text: str, units: int, start_ms: int, end_ms: int) -> list[Word]:
    """Too little audio to place anything: the span shared out evenly."""
    edges = np.linspace(start_ms, max(end_ms, start_ms + units), units + 1)
    return timed_words(text, [[int(a), int(b)] for a, b in zip(edges[:-1], edges[1:], strict=True)]) or []


class _VoicedFrames:
    """A sentence's frames from its first voiced one to its last, and the alignment over them."""

    def __init__(self, voiced: np.ndarray, loudness: np.ndarray) -> None:
        self.voiced = voiced
        self.loudness = loudness
        self.count = voiced.size
        self.voiced_before = np.concatenate([[0], np.cumsum(voiced)])
        positions = np.flatnonzero(voiced)
        everywhere = np.arange(self.count + 1)
        after = np.searchsorted(positions, everywhere)
        #: The first voiced frame at or after each frame, and the end of the last one before it.
        self.next_voiced = np.where(after < positions.size, positions[np.minimum(after, positions.size - 1)],
                                    self.count)
        self.voiced_end_before = np.where(after > 0, positions[np.maximum(after - 1, 0)] + 1, 0)

    def voiced_part(self, start: int, end: int) -> tuple[int, int]:
        on, off = int(self.next_voiced[start]), int(self.voiced_end_before[end])
        return (on, off) if off > on else (start, end)

    def best_boundaries(self, weights: np.ndarray, pauses_after: list[bool]) -> list[int]:
        """The frames where words meet (first 0, last the end), at the lowest total cost."""
        count, words = self.count, weights.size
        shares = weights / weights.sum() * self.voiced_before[-1]
        cost = np.full(count + 1, np.inf)
        cost[0] = 0.0
        came_from = np.zeros((words, count + 1), dtype=np.int64)
        ends = np.arange(count + 1)
        edge = np.minimum(ends, count - 1)
        for word in range(words):
            longest = min(count, int(max(MAX_STRETCH * shares[word], shares[word] + _STRETCH_FRAMES)) + _SLACK_FRAMES)
            boundary = np.zeros(count + 1)
            if word < words - 1:
                boundary = LOUD_BOUNDARY_COST * self.loudness[edge]
                if pauses_after[word]:
                    boundary = boundary + VOICED_PAUSE_COST * self.voiced[edge]
            best = np.full(count + 1, np.inf)
            for length in range(1, longest + 1):
                end = ends[length:]
                start = end - length
                voiced = self.voiced_before[end] - self.voiced_before[start]
                inner_silence = np.maximum(0, self.voiced_end_before[end] - self.next_voiced[start]) - voiced
                total = (cost[start] + ((voiced - shares[word]) / (DURATION_TOLERANCE * shares[word] + 3)) ** 2
                         + INNER_SILENCE_COST * inner_silence / 10 + boundary[end])
                better = total < best[end]
                best[end] = np.where(better, total, best[end])
                came_from[word, end] = np.where(better, start, came_from[word, end])
            cost = best
        bounds = [count]
        for word in range(words - 1, -1, -1):
            bounds.append(int(came_from[word, bounds[-1]]))
        return bounds[::-1]
