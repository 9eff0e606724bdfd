"""Speaker labels from speaker embeddings: windows over speech, clustered, voted per segment.

Any engine that produces timed segments can be diarized this way: embed short overlapping
windows of the speech (so one window rarely holds two voices), cluster the embeddings into
speakers, and give each transcript segment the speaker that covers most of its time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from shared.transcript import Segment
from worker.engines.base import SAMPLE_RATE_HZ

logger = logging.getLogger(__name__)

WINDOW_MS = 1500
HOP_MS = 750
#: Cosine distance under which two windows are taken as the same voice when the number of
#: speakers is estimated (tuned on generated two-voice dialogues; real voices separate better).
SAME_SPEAKER_MAX_COSINE_DISTANCE = 0.3
MAX_SPEAKERS_DEFAULT = 8

#: Maps a float32 16 kHz clip to an L2-normalised embedding vector.
Embedder = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SpeakerWindow:
    start_ms: int
    end_ms: int
    speaker: int


def speech_windows(spans_ms: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping windows inside speech; a span shorter than a window is one window."""
    windows = []
    for start, end in spans_ms:
        if end - start <= WINDOW_MS:
            windows.append((start, end))
            continue
        position = start
        while position + WINDOW_MS < end:
            windows.append((position, position + WINDOW_MS))
            position += HOP_MS
        windows.append((max(start, end - WINDOW_MS), end))
    return windows


def cluster(embeddings: np.ndarray, min_speakers: int | None, max_speakers: int | None) -> np.ndarray:
    """Speaker index per embedding; the count is estimated unless min/max pin it down."""
    count = len(embeddings)
    if count == 0:
        return np.zeros(0, dtype=int)
    if count == 1:
        return np.zeros(1, dtype=int)
    from sklearn.cluster import AgglomerativeClustering

    upper = min(max_speakers or MAX_SPEAKERS_DEFAULT, count)
    lower = max(1, min(min_speakers or 1, upper))
    estimated = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=SAME_SPEAKER_MAX_COSINE_DISTANCE
    ).fit_predict(embeddings)
    speakers = int(estimated.max()) + 1
    if lower <= speakers <= upper:
        labels = estimated
    else:
        speakers = min(max(speakers, lower), upper)
        if speakers == 1:
            return np.zeros(count, dtype=int)
        labels = AgglomerativeClustering(n_clusters=speakers, metric="cosine", linkage="average").fit_predict(
            embeddings
        )
    return _number_by_first_appearance(labels)


def _number_by_first_appearance(labels: np.ndarray) -> np.ndarray:
    """Speaker 0 is whoever speaks first, speaker 1 the next new voice, and so on."""
    order: dict[int, int] = {}
    for label in labels:
        order.setdefault(int(label), len(order))
    return np.array([order[int(label)] for label in labels], dtype=int)


def diarize_windows(
    audio: np.ndarray, spans_ms: Sequence[tuple[int, int]], embed: Embedder,
    min_speakers: int | None = None, max_speakers: int | None = None,
) -> list[SpeakerWindow]:
    windows = speech_windows(spans_ms)
    if not windows:
        return []
    rate = SAMPLE_RATE_HZ // 1000
    embeddings = np.stack([embed(audio[start * rate:end * rate]) for start, end in windows])
    labels = cluster(embeddings, min_speakers, max_speakers)
    return [SpeakerWindow(start, end, int(label)) for (start, end), label in zip(windows, labels, strict=True)]


def label_segments(segments: list[Segment], windows: list[SpeakerWindow]) -> list[Segment]:
    """Each segment takes the speaker whose windows overlap it longest (nearest if none do)."""
    if not windows:
        return segments
    labelled = []
    for segment in segments:
        start_ms, end_ms = segment.start_s * 1000, segment.end_s * 1000
        overlap: dict[int, float] = {}
        for window in windows:
            shared_ms = min(end_ms, window.end_ms) - max(start_ms, window.start_ms)
            if shared_ms > 0:
                overlap[window.speaker] = overlap.get(window.speaker, 0.0) + shared_ms
        if overlap:
            speaker = max(overlap, key=lambda s: overlap[s])
        else:
            middle_ms = (start_ms + end_ms) / 2
            speaker = min(windows, key=lambda w: abs((w.start_ms + w.end_ms) / 2 - middle_ms)).speaker
        labelled.append(segment.model_copy(update={"speaker": speaker}))
    return labelled
