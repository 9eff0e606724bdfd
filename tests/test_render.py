"""Renderers, checked with real subtitle parsers (srt, webvtt-py) rather than string equality."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
import srt
import webvtt

from shared.errors import BadRequestError
from shared.render import RENDERERS, render
from shared.transcript import Segment, Transcript, Word


def transcript(with_speakers: bool) -> Transcript:
    segments = [
        Segment(start_s=0.0, end_s=1.5, text="Hello there.", speaker=0 if with_speakers else None,
                words=[Word(word="Hello", start_s=0.0, end_s=0.6), Word(word="there.", start_s=0.7, end_s=1.5)]),
        Segment(start_s=1.5, end_s=1.5, text="Zero <length> & odd\nline", speaker=1 if with_speakers else None),
        Segment(start_s=2.0, end_s=2.5, text="   ", speaker=None),
        Segment(start_s=3725.25, end_s=3727.0, text="你好世界", speaker=0 if with_speakers else None),
    ]
    return Transcript.from_segments(segments, language="en", duration_s=3727.0, engine="t", model="m")


@pytest.mark.parametrize("with_speakers", [True, False])
def test_srt_parses_and_keeps_times(with_speakers: bool) -> None:
    body, content_type = render(transcript(with_speakers), "srt")
    assert content_type.startswith("application/x-subrip")
    cues = list(srt.parse(body))
    assert [c.index for c in cues] == [1, 2, 3]
    assert cues[0].start == timedelta(0) and cues[0].end == timedelta(seconds=1.5)
    assert cues[1].end > cues[1].start  # a zero-length segment still makes a playable cue
    assert cues[2].start == timedelta(hours=1, minutes=2, seconds=5, milliseconds=250)
    assert "\n" not in cues[1].content
    assert cues[0].content.startswith("Speaker 1: ") is with_speakers
    assert cues[1].content.startswith("Speaker 2: ") is with_speakers


@pytest.mark.parametrize("with_speakers", [True, False])
def test_vtt_parses_escapes_and_tags_voices(with_speakers: bool) -> None:
    body, _ = render(transcript(with_speakers), "vtt")
    assert body.startswith("WEBVTT\n\n")
    captions = webvtt.from_buffer(io.StringIO(body)).captions
    assert len(captions) == 3
    assert captions[2].start == "01:02:05.250"
    assert "&lt;length&gt; &amp; odd line" in captions[1].raw_text
    assert ("<v Speaker 2>" in captions[1].raw_text) is with_speakers


def test_txt_and_spk_are_one_segment_a_line() -> None:
    assert render(transcript(False), "txt")[0] == "Hello there.\nZero <length> & odd line\n你好世界\n"
    assert render(transcript(True), "spk")[0].splitlines() == [
        "Speaker 1: Hello there.", "Speaker 2: Zero <length> & odd line", "Speaker 1: 你好世界"]
    assert render(transcript(False), "spk")[0].splitlines()[1].startswith("Speaker 1: ")


def test_oddasr_layout_is_one_line_per_cue() -> None:
    lines = render(transcript(True), "srt-oddasr")[0].splitlines()
    assert lines[0] == "1 00:00:00,000 --> 00:00:01,500 Speaker 1: Hello there."
    assert len(lines) == 3


def test_text_joins_cjk_without_spaces_and_latin_with() -> None:
    assert transcript(False).text == "Hello there. Zero <length> & odd\nline 你好世界"
    joined = Transcript.from_segments([Segment(start_s=0, end_s=1, text="你好"), Segment(start_s=1, end_s=2,
                                                                                        text="世界")],
                                      language="zh", duration_s=2, engine="t", model="m")
    assert joined.text == "你好世界"


def test_json_formats() -> None:
    t = transcript(True)
    assert Transcript.model_validate_json(render(t, "json")[0]) == t
    assert json.loads(render(t, "openai_json")[0]) == {"text": t.text}
    verbose = json.loads(render(t, "verbose_json")[0])
    assert verbose["duration"] == 3727.0 and len(verbose["segments"]) == 4
    assert verbose["words"][0] == {"word": "Hello", "start": 0.0, "end": 0.6}
    no_words = Transcript.from_segments([Segment(start_s=0, end_s=1, text="a")], language=None, duration_s=1,
                                        engine="t", model="m")
    assert "words" not in json.loads(render(no_words, "verbose_json")[0])


def test_empty_transcript_renders_empty_but_valid() -> None:
    empty = Transcript(text="", segments=[], duration_s=3.0)
    assert render(empty, "txt")[0] == ""
    assert list(srt.parse(render(empty, "srt")[0])) == []
    assert webvtt.from_buffer(io.StringIO(render(empty, "vtt")[0])).captions == []


def test_unknown_format_lists_the_valid_ones() -> None:
    with pytest.raises(BadRequestError, match="srt"):
        render(transcript(False), "docx")
    assert {"txt", "spk", "srt", "vtt", "json"} <= set(RENDERERS)
