"""The typed transcript that engines produce and every renderer consumes.

It crosses process boundaries as JSON (stored in storage, never in a task message), so it
is a small pydantic model: validation on load catches a truncated or foreign file early.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Word(BaseModel):
    """One word with its timing, where the engine gives word timestamps."""

    word: str
    start_s: float
    end_s: float
    probability: float | None = None


class Segment(BaseModel):
    """One sentence-like piece of the transcript; `speaker` is set only when diarized."""

    start_s: float
    end_s: float
    text: str
    speaker: int | None = None
    #: The enrolled name of `speaker` (identify_speakers), when its voice matched one.
    speaker_name: str | None = None
    #: Cosine similarity of the speaker's voice to the best enrolled voiceprint (-1..1).
    speaker_similarity: float | None = None
    words: list[Word] = Field(default_factory=list)


class Transcript(BaseModel):
    """What a finished job produced: the whole text plus timed segments."""

    text: str
    segments: list[Segment] = Field(default_factory=list)
    language: str | None = None
    duration_s: float = 0.0
    engine: str = ""
    model: str = ""

    @classmethod
    def from_segments(
        cls, segments: list[Segment], *, language: str | None, duration_s: float, engine: str, model: str
    ) -> Transcript:
        """Build the transcript text from its segments so the two can never disagree."""
        text = join_texts(s.text for s in segments)
        return cls(
            text=text, segments=segments, language=language, duration_s=duration_s, engine=engine, model=model
        )


def join_texts(texts) -> str:  # type: ignore[no-untyped-def]
    """Join segment texts with a space, except between CJK characters, which take none."""
    out = ""
    for raw in texts:
        piece = raw.strip()
        if not piece:
            continue
        if out and not (_is_cjk(out[-1]) and _is_cjk(piece[0])):
            out += " "
        out += piece
    return out


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return 0x3000 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF
