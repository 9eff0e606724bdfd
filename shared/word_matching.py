"""Finding words and phrases in transcript text the way people mean them.

Case is ignored. A word that starts or ends with a Latin letter or digit matches only as a
whole word on that side ("report" is not found in "reporter"); Chinese and other scripts
written without spaces match anywhere. Longer entries are tried first, so a phrase wins over
a word inside it. Used to mask sensitive words and to report hotword hits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_LATIN_WORD_CHARS = "A-Za-z0-9_'"


def word_pattern(word: str) -> str:
    escaped = re.escape(word)
    if re.match(rf"[{_LATIN_WORD_CHARS}]", word[0]):
        escaped = rf"(?<![{_LATIN_WORD_CHARS}]){escaped}"
    if re.match(rf"[{_LATIN_WORD_CHARS}]", word[-1]):
        escaped = rf"{escaped}(?![{_LATIN_WORD_CHARS}])"
    return escaped


def words_regex(words: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted({w for w in words if w}, key=len, reverse=True)
    if not ordered:
        return None
    return re.compile("|".join(f"({word_pattern(word)})" for word in ordered), re.IGNORECASE)


def ordered_words(words: Iterable[str]) -> list[str]:
    """The words in the order `words_regex` numbers its groups (group i + 1 is word i)."""
    return sorted({w for w in words if w}, key=len, reverse=True)
