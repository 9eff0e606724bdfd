"""A sentence carried on after a pause reads as one: the next final's first word is not
capitalised where the previous final did not end a sentence (live engines capitalise every
decode's start)."""

from __future__ import annotations

import pytest

from worker.engines.sentence_case import continued_sentence


@pytest.mark.parametrize(("previous", "text", "expected"), [
    ("like the present period,", "That some of its authorities", "that some of its authorities"),
    ("being received,", "For good or for evil.", "for good or for evil."),
    ("we had everything before us", "And nothing", "and nothing"),
    ("It was the best of times.", "It was the worst", "It was the worst"),  # a sentence ended
    ("Did it?", "That was it.", "That was it."),
    ('He said "stop."', "That was all.", "That was all."),  # ended inside quotes
    ("", "That is how it starts.", "That is how it starts."),  # the session's first final
    ("in short,", "I think so.", "I think so."),  # "I" keeps its capital
    ("I'm originally from", "Chicago also.", "Chicago also."),  # a name keeps its capital
    ("and then,", "THAT happened.", "THAT happened."),  # shouted, as written
    ("我们今天", "讨论一下", "讨论一下"),  # other scripts, as the engine wrote them
    ("like the present period,", "That", "that"),
])
def test_the_first_word_of_a_continued_sentence(previous: str, text: str, expected: str) -> None:
    assert continued_sentence(previous, text) == expected
