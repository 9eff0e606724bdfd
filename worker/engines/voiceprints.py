"""Naming diarized speakers after enrolled voiceprints: pure numpy, any speaker model.

An enrolled voice is the L2-normalised mean of its parts' embeddings. A diarized speaker is
embedded the same way, from its own segments' audio joined together (the same kind of input
the enrollment parts were, so both sides of the comparison are alike), and takes the name
of the most similar voiceprint (cosine similarity) when that similarity reaches the
threshold; otherwise it stays `Speaker N`. Only embeddings of one model are ever compared:
the caller passes voiceprints made by the engine's own speaker model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from shared.transcript import Segment
from worker.engines.base import SAMPLE_RATE_HZ

#: Names the embedding models record on a voiceprint: never compared with each other.
RESEMBLYZER_MODEL = "resemblyzer-ge2e"
CAMPPLUS_MODEL = "campplus"

#: Speech of one diarized speaker that is embedded at most: more adds little but time.
MAX_SPEAKER_SPEECH_S = 60.0

#: Maps a float32 16 kHz clip to an L2-normalised embedding vector.
SpeakerEmbedder = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Match:
    """The best voiceprint for one diarized speaker; `name` is None below the threshold."""

    name: str | None
    similarity: float
    candidate: str


def normalised_mean(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """The direction the embeddings share: their mean, scaled to length 1."""
    mean = np.mean(np.stack([np.asarray(e, dtype=np.float64) for e in embeddings]), axis=0)
    norm = float(np.linalg.norm(mean))
    if norm == 0.0 or not np.isfinite(norm):
        raise ValueError("the embeddings cancel out or are not finite")
    return mean / norm


def speaker_speech(audio: np.ndarray, segments: Sequence[Segment],
                   max_speech_s: float = MAX_SPEAKER_SPEECH_S) -> dict[int, np.ndarray]:
    """Each diarized speaker's segments' audio joined, up to `max_speech_s` each."""
    limit = int(max_speech_s * SAMPLE_RATE_HZ)
    pieces: dict[int, list[np.ndarray]] = {}
    lengths: dict[int, int] = {}
    for segment in segments:
        if segment.speaker is None:
            continue
        start = max(0, int(segment.start_s * SAMPLE_RATE_HZ))
        end = min(audio.size, int(segment.end_s * SAMPLE_RATE_HZ))
        room = limit - lengths.get(segment.speaker, 0)
        if end <= start or room <= 0:
            continue
        piece = audio[start:min(end, start + room)]
        pieces.setdefault(segment.speaker, []).append(piece)
        lengths[segment.speaker] = lengths.get(segment.speaker, 0) + piece.size
    return {speaker: np.concatenate(parts) for speaker, parts in pieces.items()}


def best_match(embedding: np.ndarray, voiceprints: Sequence[tuple[str, Sequence[float]]],
               threshold: float) -> Match | None:
    """The most similar enrolled name (a name enrolled twice counts by its best voiceprint)."""
    if not voiceprints:
        return None
    vector = np.asarray(embedding, dtype=np.float64)
    vector = vector / (np.linalg.norm(vector) or 1.0)
    best_name, best_similarity = "", -2.0
    for name, print_vector in voiceprints:
        other = np.asarray(print_vector, dtype=np.float64)
        if other.shape != vector.shape:
            continue  # another model's size: never comparable (the caller filters by model too)
        similarity = float(np.dot(vector, other / (np.linalg.norm(other) or 1.0)))
        if similarity > best_similarity:
            best_name, best_similarity = name, similarity
    if best_similarity < -1.5:
        return None
    accepted = best_name if best_similarity >= threshold else None
    return Match(name=accepted, similarity=round(best_similarity, 4), candidate=best_name)


def identify(audio: np.ndarray, segments: list[Segment], embed: SpeakerEmbedder,
             voiceprints: Sequence[tuple[str, Sequence[float]]], threshold: float) -> list[Segment]:
    """Segments with `speaker_name` (above the threshold) and `speaker_similarity` filled in."""
    if not voiceprints:
        return segments
    matches: dict[int, Match] = {}
    for speaker, speech in speaker_speech(audio, segments).items():
        match = best_match(embed(speech), voiceprints, threshold)
        if match is not None:
            matches[speaker] = match
    named = []
    for segment in segments:
        match = matches.get(segment.speaker) if segment.speaker is not None else None
        if match is None:
            named.append(segment)
        else:
            named.append(segment.model_copy(update={"speaker_name": match.name,
                                                    "speaker_similarity": match.similarity}))
    return named
