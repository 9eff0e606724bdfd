"""Which words of a re-decoded sentence are stable: LocalAgreement, as whisper_streaming does.

A live engine that decodes the open sentence again and again (Whisper, Moonshine) commits the
words two consecutive decodes agree on; once committed, a word is never taken back, so
protocols whose partial text may only grow get it from here.
"""

from __future__ import annotations

import difflib
import re

_WORD_NORMALISE_RE = re.compile(r"[^\w']+")


def normalised_word(word: str) -> str:
    return _WORD_NORMALISE_RE.sub("", word.lower())


def aligned_end(committed: list[str], words: list[str]) -> int:
    """Where in `words` the committed words end, aligned word by word (difflib); where nothing
    of them is found there, as many words in as they are long.

    A later decode may word the committed part a little differently ("belief that was" against
    "belief, it was"); aligning, rather than demanding the same prefix, keeps the partials
    going after such a disagreement instead of stalling on it until the final.
    """
    if not committed:
        return 0
    matcher = difflib.SequenceMatcher(a=[normalised_word(w) for w in committed],
                                      b=[normalised_word(w) for w in words], autojunk=False)
    blocks = [block for block in matcher.get_matching_blocks() if block.size]
    if not blocks:  # an early guess was all wrong ("Inch," for "In short,"): go on after as many words
        return min(len(committed), len(words))
    last = blocks[-1]
    unmatched_tail = len(committed) - (last.a + last.size)
    return min(len(words), last.b + last.size + unmatched_tail)


def agreed_prefix(committed: list[str], previous: list[str], current: list[str]) -> list[str]:
    """The committed words, extended by the words the two latest hypotheses agree on after them.

    Text once committed is never taken back (a client has shown it). The newest hypothesis'
    last word is never committed: the clip may end inside it, and a decode that ends there
    often closes it with a full stop ("Please." of "Please send").
    """
    in_current, in_previous = aligned_end(committed, current), aligned_end(committed, previous)
    extended = list(committed)
    for before, now in zip(previous[in_previous:], current[in_current:-1], strict=False):
        if normalised_word(before) != normalised_word(now) or not normalised_word(now):
            break
        extended.append(now)
    return extended


def shown_hypothesis(committed: list[str], current: list[str]) -> list[str]:
    """What a partial shows: the committed words, then the newest hypothesis from where they end
    in it."""
    return list(committed) + current[aligned_end(committed, current):]


class PartialAgreement:
    """One open sentence's partial state, for an engine that decodes it again and again: the
    stable words, the last hypothesis, and what the last partial showed."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A new sentence: nothing stable, nothing shown."""
        self.committed: list[str] = []
        self.previous: list[str] = []
        self.shown: list[str] = []

    def update(self, words: list[str]) -> bool:
        """Take the newest decode's words; True when the partial to show has changed."""
        committed = agreed_prefix(self.committed, self.previous, words)
        self.previous = words
        shown = shown_hypothesis(committed, words)
        if not shown or (committed == self.committed and shown == self.shown):
            return False
        self.committed, self.shown = committed, shown
        return True
