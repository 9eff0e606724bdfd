"""Sensitive words, masked in every transcript before it is stored or sent.

The original OddASR's config named a sensitive-word file (`odd_asr_slp_cfg.sensitive_words.path`,
one word or phrase a line) that nothing read. Here each occurrence is replaced by a mask
(`***` by default) in the transcript the worker stores, so every output format, the webhook
body and a live session's sentences all show the mask, and the words never reach storage.

Words are found as `shared.word_matching` finds them: case ignored, whole Latin words,
Chinese anywhere, phrases before the words inside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from shared.transcript import Segment, Transcript, Word
from shared.word_matching import WordMatcher


def read_word_list(path: Path) -> list[str]:
    """One entry a line; blank lines and `#` comments skipped; duplicates once."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read the sensitive-word file {path}: {exc}") from exc
    words: list[str] = []
    for line in lines:
        word = line.strip()
        if word and not word.startswith("#") and word.lower() not in {w.lower() for w in words}:
            words.append(word)
    return words


@dataclass(frozen=True)
class SensitiveWords:
    words: tuple[str, ...]
    mask: str = "***"

    @classmethod
    def from_file(cls, path: Path | None, mask: str = "***") -> SensitiveWords:
        return cls(tuple(read_word_list(path)) if path else (), mask)

    @cached_property
    def _matcher(self) -> WordMatcher:
        return WordMatcher(self.words)

    def mask_text(self, text: str) -> str:
        return self._matcher.replace(text, self.mask)

    def mask_transcript(self, transcript: Transcript) -> Transcript:
        if not self.words:
            return transcript
        masked = self.mask_text
        segments = [Segment(start_s=s.start_s, end_s=s.end_s, text=masked(s.text), speaker=s.speaker,
                            words=[Word(word=masked(w.word), start_s=w.start_s, end_s=w.end_s,
                                        probability=w.probability) for w in s.words])
                    for s in transcript.segments]
        return transcript.model_copy(update={"segments": segments, "text": masked(transcript.text)})
