"""Who said each final of a live session, decided once, when the final is sent.

Each sentence's voice is embedded by the worker's speaker model (the one voiceprints are made
with: Resemblyzer on Whisper workers, cam++ on FunASR ones). It takes the name of the key's
enrolled voiceprint it matches (cosine similarity at least the service's
`speaker_match_threshold`, as file jobs name speakers); else it joins the anonymous speaker
of the session whose voice it is closest to, if close enough, or becomes a new one
(`Speaker 1`, `Speaker 2`, ... in order of appearance). A label sent is never changed: a
later, better grouping is the stored job's business (`reprocess: diarize`).

Memory stays flat: each anonymous speaker keeps at most `MAX_EMBEDDINGS_PER_SPEAKER`
embeddings (the newest replace the oldest), and a session at most `MAX_ANONYMOUS_SPEAKERS`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from worker.engines.base import SAMPLE_RATE_HZ
from worker.engines.voiceprints import SpeakerEmbedder, best_match

#: A sentence joins the session's voice whose mean it is closest to when at least this similar
#: (cosine); else it is a new voice. One sentence says less about a voice than a file's minute:
#: on bench/live_speakers.py's dialogues, two sentences of one voice scored 0.74-0.99 (median
#: 0.91) and of two voices 0.45-0.79 (median 0.63). 0.78 kept the most speech with its voice
#: there (0.75 merged two voices, 0.80 split one more). Real voices sit lower and further apart
#: (its real-voice dialogues, four game actors and two English readers): one voice's sentences
#: 0.40-0.96 (median 0.76), two voices' 0.34-0.67 (median 0.52), and a lower threshold would
#: keep more of their speech under one label (0.72: 0.90 against 0.80 on 34 of them), but 0.76
#: merges two generated voices and 0.77 the two speakers of pyannote's real phone-band sample
#: (their sentences score 0.71-0.82 against each other). bench/live_speaker_rules.py replays the
#: alternatives; joining by a voice's nearest sentence as well as its mean was never worse there
#: (+0.01) but is single linkage, which can chain voices over a long session: not taken.
SAME_SPEAKER_MIN_SIMILARITY = 0.78
MAX_EMBEDDINGS_PER_SPEAKER = 20
MAX_ANONYMOUS_SPEAKERS = 16  # voices of a session, named or not
#: At most this much of a sentence (its end) is embedded: more costs time (GE2E on one thread:
#: 24 ms for 4 s, 76 ms for 8 s at the median on a loaded 2-core machine) and adds little.
MAX_EMBED_S = 4.0
#: A sentence shorter than this says too little about its voice to start a new speaker: it
#: goes to the closest one there is. At 1.0 s a real reader's 1.1 s "No matter." (with the
#: final's padding) became a second speaker; 1.5 s keeps him one and changes nothing on
#: bench/live_speakers.py's dialogues.
MIN_NEW_SPEAKER_S = 1.5
ANONYMOUS_PREFIX = "Speaker "


@dataclass(frozen=True)
class LiveSpeaker:
    """`label` is what the client shows; `name` and `similarity` only for an enrolled voice."""

    label: str
    name: str | None = None
    similarity: float | None = None


@dataclass
class _Voice:
    """A voice heard in the session: anonymous (`name` None) until its speech matches an
    enrolled voiceprint, from which final on it carries that name."""

    #: "Speaker N" once shown anonymously ("" before).
    label: str = ""
    name: str | None = None
    similarity: float | None = None
    embeddings: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=MAX_EMBEDDINGS_PER_SPEAKER))

    def mean(self) -> np.ndarray:
        mean = np.mean(np.stack(self.embeddings), axis=0)
        return mean / (np.linalg.norm(mean) or 1.0)

    def similarity_to(self, embedding: np.ndarray) -> float:
        return float(np.dot(embedding, self.mean()))


def _unit(embedding: Sequence[float] | np.ndarray) -> np.ndarray:
    vector = np.asarray(embedding, dtype=np.float64)
    return vector / (np.linalg.norm(vector) or 1.0)


class LiveSpeakerLabeler:
    """One session's speakers: enrolled names where the voice matches one, else anonymous ones.

    A sentence is compared with the enrolled voiceprints on its own, and, once it has joined a
    voice of the session, with that voice's mean too: a few seconds of speech say less about
    a voice than the minute an enrollment holds, and their mean over several sentences comes
    close to it (GE2E is trained for exactly that), so a speaker whose first sentence fell
    short of the threshold is named from the sentence that reaches it on.
    """

    def __init__(self, embed: SpeakerEmbedder, voiceprints: Sequence[tuple[str, Sequence[float]]],
                 match_threshold: float) -> None:
        self._embed = embed
        self._voiceprints = list(voiceprints)
        self._match_threshold = match_threshold
        self._voices: list[_Voice] = []
        self._next_number = 1

    def label(self, clip: np.ndarray) -> LiveSpeaker:
        """The speaker of one final sentence's audio."""
        end = clip[-int(MAX_EMBED_S * SAMPLE_RATE_HZ):]
        embedding = _unit(self._embed(end))
        short = end.size < MIN_NEW_SPEAKER_S * SAMPLE_RATE_HZ
        voice = self._voice_of(embedding, short)
        if not short or not voice.embeddings:  # a short sentence's embedding would blur the voice
            voice.embeddings.append(embedding)
        for candidate in self._naming_candidates(clip, embedding, voice):
            match = best_match(candidate, self._voiceprints, self._match_threshold)
            if match is not None and match.name is not None and (voice.name is None or match.name == voice.name):
                voice.name, voice.similarity = match.name, match.similarity
                break
        if voice.name is not None:
            return LiveSpeaker(voice.name, voice.name, voice.similarity)
        if not voice.label:  # numbered when first shown: named voices take no number
            voice.label = f"{ANONYMOUS_PREFIX}{self._next_number}"
            self._next_number += 1
        return LiveSpeaker(voice.label)

    def _naming_candidates(self, clip: np.ndarray, embedding: np.ndarray, voice: _Voice) -> tuple[np.ndarray, ...]:
        """What is compared with the enrolled voiceprints, in turn: the sentence's end on its own,
        then its voice's mean (`clip`, the whole sentence, is there for a rule that would embed
        it too: bench/live_speaker_rules.py tries one)."""
        return (embedding, voice.mean())

    def _voice_of(self, embedding: np.ndarray, short: bool) -> _Voice:
        """The session's voice this sentence is, or a new one."""
        heard = [voice for voice in self._voices if voice.embeddings]
        closest = max(heard, key=lambda voice: voice.similarity_to(embedding), default=None)
        if closest is not None and (short or len(self._voices) >= MAX_ANONYMOUS_SPEAKERS
                                    or closest.similarity_to(embedding) >= SAME_SPEAKER_MIN_SIMILARITY):
            return closest
        voice = _Voice()
        self._voices.append(voice)
        return voice
