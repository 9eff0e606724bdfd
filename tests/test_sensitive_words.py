"""Masking of sensitive words: cases, punctuation, whole words, phrases, Chinese, words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.config import load_settings
from shared.sensitive_words import SensitiveWords, read_word_list
from shared.transcript import Segment, Transcript, Word


@pytest.mark.parametrize(("text", "masked"), [
    ("Send the Report now.", "Send the *** now."),
    ("REPORT, report; report!", "***, ***; ***!"),
    ("(report)", "(***)"),
    ("reporter reports", "reporter reports"),  # whole words only, for Latin letters
    ("the quarterly report is late", "the *** is late"),  # the phrase wins over its word
    ("我们的敏感词在这里", "我们的***在这里"),  # no spaces in Chinese: matched anywhere
    ("nothing to hide", "nothing to hide"),
])
def test_masking(text: str, masked: str) -> None:
    words = SensitiveWords(("report", "quarterly report", "敏感词"))
    assert words.mask_text(text) == masked


def test_a_transcript_is_masked_in_text_segments_and_words() -> None:
    transcript = Transcript.from_segments(
        [Segment(start_s=0, end_s=1, text="The Report.", words=[Word(word=" Report.", start_s=0.2, end_s=0.6)])],
        language="en", duration_s=1.0, engine="e", model="m")
    masked = SensitiveWords(("report",), mask="[x]").mask_transcript(transcript)
    assert masked.text == "The [x]." and masked.segments[0].text == "The [x]."
    assert masked.segments[0].words[0].word == " [x]."
    assert SensitiveWords(()).mask_transcript(transcript) is transcript


def test_the_word_file_skips_blanks_comments_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "words"
    path.write_text("\ufeffone\n\n# not a word\nTwo words\nONE\n", encoding="utf-8")
    assert read_word_list(path) == ["one", "Two words"]
    with pytest.raises(ValueError, match="cannot read"):
        read_word_list(tmp_path / "missing")


def test_the_original_config_key_is_read_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "sensitivewords").write_text("x\n", encoding="utf-8")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"odd_asr_slp_cfg": {"sensitive_words": {"path": "scripts/sensitivewords"}}}))
    settings = load_settings(config)
    assert settings.sensitive_words_path == tmp_path / "scripts" / "sensitivewords"
    assert "odd_asr_slp_cfg.sensitive_words.path" not in settings.ignored_config_keys
