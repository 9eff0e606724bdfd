"""The JSON transcripts of OpenAI's `response_format` values (and of OddASR's synchronous
answer): the renderers in shared/render.py build them through these models, and the OpenAPI
document's schemas are generated from the same models."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic.json_schema import SkipJsonSchema


class Text(BaseModel):
    text: str


class VerboseSegment(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class VerboseWord(BaseModel):
    word: str
    start: float
    end: float


class VerboseTranscription(BaseModel):
    """OpenAI `verbose_json`: segments always, `words` only when the engine gave word times."""

    task: str
    language: str
    duration: float
    text: str
    segments: list[VerboseSegment]
    words: list[VerboseWord] | SkipJsonSchema[None] = None
