"""Hotwords: the original's file format, weights, and where hotwords turned up in a transcript.

The original OddASR's hotword file holds one entry a line, `word weight` (`Alibaba 20`); the
weight is optional here (`DEFAULT_WEIGHT`) and an entry may be a phrase (`Jane Doe 30`: the
last number is the weight). Neither engine takes a weight per word through its Python API
(FunASR's SeacoParaformer takes a word list, faster-whisper a prompt), so a weight decides
the order (heavier first: the part of a long prompt Whisper reads first, the ones kept when a
list is cut) and 0 drops an entry. What a job used is recorded in its options.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shared.errors import BadRequestError
from shared.transcript import Segment, Transcript, Word
from shared.word_matching import WordMatcher, fold_case

DEFAULT_WEIGHT = 10
MAX_WEIGHT = 100
MAX_ENTRIES = 1000
MAX_ENTRY_CHARS = 100


@dataclass(frozen=True)
class HotwordEntry:
    word: str
    weight: int = DEFAULT_WEIGHT


def parse_hotword_lines(text: str) -> list[HotwordEntry]:
    """Entries of the original's file format; a 400 naming the line for anything else."""
    entries: dict[str, HotwordEntry] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip().lstrip("\ufeff")
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.rsplit(None, 1)
        word, weight = stripped, DEFAULT_WEIGHT
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            word, weight = parts[0].strip(), int(parts[1])
        elif stripped.lstrip("-").isdigit():
            raise BadRequestError(f"line {number}: {stripped!r} is a weight without a word")
        if not 0 <= weight <= MAX_WEIGHT:
            raise BadRequestError(f"line {number}: the weight of {word!r} must be 0 to {MAX_WEIGHT}, not {weight}")
        if len(word) > MAX_ENTRY_CHARS:
            raise BadRequestError(f"line {number}: an entry is at most {MAX_ENTRY_CHARS} characters")
        entries[word.lower()] = HotwordEntry(word, weight)  # a repeated word: the last line wins
    if len(entries) > MAX_ENTRIES:
        raise BadRequestError(f"a hotword set holds at most {MAX_ENTRIES} entries, not {len(entries)}")
    return list(entries.values())


def entries_from_json(items: object) -> list[HotwordEntry]:
    """`[{"word": "Alibaba", "weight": 20}, "OddASR", ...]`, checked like the file format."""
    if not isinstance(items, list):
        raise BadRequestError('"words" must be a list of {"word": ..., "weight": ...} objects or strings')
    lines = []
    for item in items:
        if isinstance(item, str):
            lines.append(item)
        elif isinstance(item, dict) and isinstance(item.get("word"), str):
            weight = item.get("weight", DEFAULT_WEIGHT)
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise BadRequestError(f"the weight of {item['word']!r} must be a whole number")
            lines.append(f"{item['word'].strip()} {weight}")
        else:
            raise BadRequestError('each entry is {"word": "...", "weight": 0-100} or a string')
    return parse_hotword_lines("\n".join(lines))


def by_weight(entries: list[HotwordEntry]) -> list[HotwordEntry]:
    """Heavier first; weight 0 dropped; ties keep their order."""
    return sorted((e for e in entries if e.weight > 0), key=lambda e: -e.weight)


def content_version(entries: list[HotwordEntry]) -> str:
    """A short fingerprint of a list's content (the version of a file-based set)."""
    text = "\n".join(f"{e.word}\t{e.weight}" for e in entries)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def hotword_hits(transcript: Transcript, words: list[str]) -> list[dict[str, object]]:
    """Each hotword found in the transcript: how often, and when (the times of the words the
    occurrence spans where the engine gave word timings, else of the segment).

    Linear in the transcript plus the words: the worker computes it once when a job ends and
    stores it on the job (`Job.hotword_hits`), so reading a job never matches again."""
    matcher = WordMatcher(words)
    if not matcher:
        return []
    hits: dict[str, list[dict[str, float]]] = {}
    for segment in transcript.segments:
        spans = _word_spans(segment) if segment.words else []
        for match in matcher.find(segment.text):
            start_s, end_s = segment.start_s, segment.end_s
            covering = [word for span_start, span_end, word in spans
                        if span_start < match.end and span_end > match.start]
            if covering:
                start_s, end_s = covering[0].start_s, covering[-1].end_s
            hits.setdefault(match.word, []).append({"start": round(start_s, 3), "end": round(end_s, 3)})
    return [{"word": word, "count": len(times), "times": times} for word, times in hits.items()]


#: How far past the previous word a word's text is looked for in its segment's text.
_WORD_SEARCH_SLACK_CHARS = 16


def _word_spans(segment: Segment) -> list[tuple[int, int, Word]]:
    """Where each timed word sits in the segment's text (start, end, word), found left to
    right within a short window, so the cost stays linear; a word not found there is left out."""
    text = fold_case(segment.text)
    spans: list[tuple[int, int, Word]] = []
    position = 0
    for word in segment.words:
        needle = fold_case(word.word.strip())
        if not needle:
            continue
        found = text.find(needle, position, position + len(needle) + _WORD_SEARCH_SLACK_CHARS)
        if found >= 0:
            position = found + len(needle)
            spans.append((found, position, word))
    return spans
