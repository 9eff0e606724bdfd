"""FunASR's result as timed segments: its token times put back on its punctuated text.

FunASR returns the text (punctuated by ct-punc) and one `[start_ms, end_ms]` per recognised
unit (a CJK character or a Latin word), per sentence in `sentence_info` when a speaker model
runs, for the whole file otherwise. Without a speaker model there is no sentence split at all:
the service wrote the whole file as one cue. Here each unit becomes a Word carrying the
punctuation that follows it, so segments can be cut at sentence ends here and at pauses by
`shared.segment_timing.fit_to_speech`, and the text joins back exactly.
"""

from __future__ import annotations

import re
from typing import Any

from shared.transcript import Segment, Word, join_texts

#: A recognised unit: one CJK character, or a run of letters, digits and apostrophes.
_UNIT_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W_](?:[^\W_]|['’-](?=[^\W_]))*", re.UNICODE)
#: A sentence ends after a unit whose trailing punctuation holds one of these.
_SENTENCE_END = set(".!?…。！？")


def text_units(text: str) -> list[str]:
    """The recognised units of `text`, without their punctuation: what FunASR times one by one."""
    return [match.group() for match in _UNIT_RE.finditer(text)]


def unit_texts(text: str) -> list[str]:
    """Each unit of `text` with the punctuation that follows it (the words `timed_words` makes)."""
    matches = list(_UNIT_RE.finditer(text))
    return [text[match.start():matches[i + 1].start() if i + 1 < len(matches) else len(text)].strip()
            for i, match in enumerate(matches)]


def timed_words(text: str, stamps_ms: list[list[int]]) -> list[Word] | None:
    """The units of `text` with their times, each carrying the punctuation that follows it;
    None when the units do not pair one to one with the stamps (a model that times otherwise)."""
    matches = list(_UNIT_RE.finditer(text))
    if not matches or len(matches) != len(stamps_ms):
        return None
    words = []
    for index, (match, stamp) in enumerate(zip(matches, stamps_ms, strict=True)):
        leading = text[:match.start()].strip() if index == 0 else ""
        following = text[match.end():matches[index + 1].start() if index + 1 < len(matches) else len(text)]
        words.append(Word(word=leading + match.group() + following.strip(), start_s=stamp[0] / 1000,
                          end_s=stamp[1] / 1000))
    return words


def _sentences(words: list[Word]) -> list[list[Word]]:
    """Words grouped into sentences at sentence-ending punctuation."""
    groups: list[list[Word]] = [[]]
    for word in words:
        groups[-1].append(word)
        if any(char in _SENTENCE_END for char in word.word[-3:]):
            groups.append([])
    return [group for group in groups if group]


def segments_from_result(result: dict[str, Any], *, diarize: bool) -> list[Segment]:
    """Timed segments, with words where the times pair with the text (see `timed_words`)."""
    sentences = result.get("sentence_info") or []
    if not sentences and str(result.get("text", "")).strip():
        stamps = result.get("timestamp") or []
        sentences = [{"text": result["text"], "timestamp": stamps,
                      "start": stamps[0][0] if stamps else 0, "end": stamps[-1][1] if stamps else 0}]
    segments = []
    for sentence in sentences:
        text = str(sentence.get("text", "")).strip()
        if not text:
            continue
        speaker_value = sentence.get("spk") if diarize else None
        speaker = int(speaker_value) if speaker_value is not None else None
        words = timed_words(text, list(sentence.get("timestamp") or []))
        if words is None:
            segments.append(Segment(start_s=sentence["start"] / 1000, end_s=sentence["end"] / 1000, text=text,
                                    speaker=speaker))
            continue
        for group in _sentences(words):
            segments.append(Segment(start_s=group[0].start_s, end_s=group[-1].end_s, text=join_texts(
                w.word for w in group), speaker=speaker, words=group))
    return segments
