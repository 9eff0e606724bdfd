"""Which words of a re-decoded sentence are stable: LocalAgreement, as whisper_streaming does.

A live engine that decodes the open sentence again and again (Whisper, Moonshine) commits the
words two consecutive decodes agree on; once committed, a word is never taken back, so
protocols whose partial text may only grow get it from here.
"""

from __future__ import annotations

import re

_WORD_NORMALISE_RE = re.compile(r"[^\w']+")


def normalised_word(word: str) -> str:
    return _WORD_NORMALISE_RE.sub("", word.lower())


def agreed_prefix(committed: list[str], previous: list[str], current: list[str]) -> list[str]:
    """The committed words, extended by the words the two latest hypotheses agree on.

    Text once committed is never taken back (a client has shown it): when the newest
    hypothesis contradicts it, nothing more is committed until they agree again. The newest
    hypothesis' last word is never committed: the clip may end inside it, and a decode that
    ends there often closes it with a full stop ("Please." of "Please send").
    """
    n = len(committed)
    if len(previous) < n or len(current) < n:
        return committed
    if [normalised_word(w) for w in current[:n]] != [normalised_word(w) for w in committed]:
        return committed
    extended = list(committed)
    for before, now in zip(previous[n:], current[n:-1], strict=False):
        if normalised_word(before) != normalised_word(now) or not normalised_word(now):
            break
        extended.append(now)
    return extended


def shown_hypothesis(committed: list[str], current: list[str]) -> list[str]:
    """What a partial shows: the committed words, then the rest of the newest hypothesis where it
    agrees with them (where it does not, only the committed words: they are never taken back)."""
    n = len(committed)
    if [normalised_word(w) for w in current[:n]] != [normalised_word(w) for w in committed]:
        return list(committed)
    return list(committed) + current[n:]
