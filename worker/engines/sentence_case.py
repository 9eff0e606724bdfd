"""A sentence the speaker carries on after a pause reads as one sentence.

Live engines decode each sentence on its own and start every decode with a capital, so a
sentence cut at a pause mid-thought came out as "... like the present period," then "That
some of its noisiest authorities ...": the joined transcript (FunASR's offline text, the
stored job, subtitles) read "present period, That some". When the previous final did not end
a sentence, the next one's first word is written in lower case, but only where it is an
English function word: a name or "I" after a comma keeps its capital, and other languages are
left as the engine wrote them.
"""

from __future__ import annotations

import re

#: The end of a sentence: a full stop, question or exclamation mark (Latin or CJK), an
#: ellipsis, perhaps inside closing quotes or brackets.
_ENDS_SENTENCE = re.compile(r"[.!?…。！？][\"'”’)\]]*\s*$")

#: Words that start a clause, never a name: the ones lower-cased after a cut mid-sentence.
_CONTINUATION_WORDS_TEXT = """
a an the and but or nor so yet for that which who whom whose where when while whether if as
because since though although unless until than then to of in on at by with from into onto
about after before over under between through during without within it its this these those
there their they them we us our he him his she her you your my me is was were are be been
being not no all some any each every both either neither just only also even still more most
very much many such what how why
"""
CONTINUATION_WORDS = frozenset(_CONTINUATION_WORDS_TEXT.split())


def continued_sentence(previous_text: str, text: str) -> str:
    """`text` as the continuation of `previous_text` when that did not end a sentence."""
    if not previous_text.strip() or not text or _ENDS_SENTENCE.search(previous_text):
        return text
    first, _, rest = text.partition(" ")
    word = first.rstrip(",;:")
    if word.lower() not in CONTINUATION_WORDS or word != word.capitalize():
        return text
    return first[0].lower() + first[1:] + (" " + rest if rest else "")
