"""The API's static list of Whisper languages is faster-whisper's own (the API may not
import faster-whisper, so it keeps a copy; this test keeps the copy true)."""

from __future__ import annotations

from faster_whisper.tokenizer import _LANGUAGE_CODES

from shared.engines_catalog.whisper import WHISPER_LANGUAGES


def test_the_whisper_language_list_matches_faster_whisper() -> None:
    assert set(WHISPER_LANGUAGES) == set(_LANGUAGE_CODES)
