"""Finding words and phrases in transcript text the way people mean them.

Case is ignored. A word that starts or ends with a Latin letter or digit matches only as a
whole word on that side ("report" is not found in "reporter"); Chinese and other scripts
written without spaces match anywhere. Longer entries are tried first, so a phrase wins over
a word inside it, and matches do not overlap (the leftmost wins). Used to mask sensitive
words and to report hotword hits.

One Aho-Corasick automaton (`pyahocorasick`) finds every entry in one pass over the text,
so the time grows with the text plus the entries (and the matches), never with their
product: an alternation of a thousand look-behind patterns took seconds over one
transcript, inside the API process that served every other request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import ahocorasick

#: The characters a Latin word is made of: an entry that starts (ends) with one of them
#: matches only where the text has none of them just before (after) it.
LATIN_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_'")


def fold_case(text: str) -> str:
    """`text` case-folded character by character, so that every index of the result is the
    index of the same character in `text` (a character whose folding is longer, like 'ß', is
    kept as its lower case)."""
    folded = text.casefold()
    if len(folded) == len(text):  # no character grew, so each folded to exactly one
        return folded
    return "".join(f if len(f := c.casefold()) == 1 else c.lower()[:1] or c for c in text)


@dataclass(frozen=True)
class WordMatch:
    """One occurrence: the entry as it was given, and where it is (`end` exclusive)."""

    word: str
    start: int
    end: int


@dataclass(frozen=True)
class _Entry:
    word: str
    length: int
    bounded_before: bool
    bounded_after: bool


class WordMatcher:
    """Finds a fixed list of words in texts. Build it once per list; `find` is linear in
    the text plus the matches it looks at."""

    def __init__(self, words: Iterable[str]) -> None:
        self._automaton = ahocorasick.Automaton()
        entries: dict[str, _Entry] = {}
        for word in words:
            key = fold_case(word)
            if not word or key in entries:  # the first spelling of a word is the one reported
                continue
            entries[key] = _Entry(word, len(key), key[0] in LATIN_WORD_CHARS, key[-1] in LATIN_WORD_CHARS)
            self._automaton.add_word(key, entries[key])
        self.words = [entry.word for entry in entries.values()]
        if entries:
            self._automaton.make_automaton()

    def __bool__(self) -> bool:
        return bool(self.words)

    def find(self, text: str) -> Iterator[WordMatch]:
        """The occurrences in `text`, left to right: at each place, the longest entry that
        stands there as a whole word; nothing that overlaps an occurrence already found."""
        if not self.words or not text:
            return
        folded = fold_case(text)
        longest_at: dict[int, _Entry] = {}
        for last, entry in self._automaton.iter(folded):
            start = last + 1 - entry.length
            if entry.bounded_before and start > 0 and folded[start - 1] in LATIN_WORD_CHARS:
                continue
            if entry.bounded_after and last + 1 < len(folded) and folded[last + 1] in LATIN_WORD_CHARS:
                continue
            best = longest_at.get(start)
            if best is None or entry.length > best.length:
                longest_at[start] = entry
        covered_to = 0
        for start in sorted(longest_at):
            if start < covered_to:
                continue
            entry = longest_at[start]
            covered_to = start + entry.length
            yield WordMatch(entry.word, start, covered_to)

    def replace(self, text: str, mask: str) -> str:
        """`text` with every occurrence replaced by `mask`."""
        pieces: list[str] = []
        position = 0
        for match in self.find(text):
            pieces += [text[position:match.start], mask]
            position = match.end
        if not pieces:
            return text
        pieces.append(text[position:])
        return "".join(pieces)
