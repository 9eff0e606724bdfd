"""Renderers, checked with real subtitle parsers (srt, webvtt-py) rather than string equality.

String equality is used only for the line formats whose exact layout old clients parse
(txt, spk, srt-oddasr)."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
import srt
import webvtt

from shared.errors import BadRequestError
from shared.render import RENDERERS, Renderer, render
from shared.transcript import Segment, Transcript, Word

ALL_FORMATS = ["txt", "spk", "srt", "vtt", "json", "srt-oddasr", "text", "openai_json", "verbose_json"]
CONTENT_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "spk": "text/plain; charset=utf-8",
    "srt": "application/x-subrip",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
    "srt-oddasr": "text/plain; charset=utf-8",
    "text": "text/plain; charset=utf-8",
    "openai_json": "application/json",
    "verbose_json": "application/json",
}


def transcript(with_speakers: bool) -> Transcript:
    """Every edge at once: words, a zero-length cue, markup characters, a newline, a blank
    segment, a time past one hour, CJK text."""
    segments = [
        Segment(
            start_s=0.0,
            end_s=1.5,
            text="Hello there.",
            speaker=0 if with_speakers else None,
            words=[Word(word="Hello", start_s=0.0, end_s=0.6), Word(word="there.", start_s=0.7, end_s=1.5)],
        ),
        Segment(start_s=1.5, end_s=1.5, text="Zero <length> & odd\nline", speaker=1 if with_speakers else None),
        Segment(start_s=2.0, end_s=2.5, text="   ", speaker=None),
        Segment(start_s=3725.25, end_s=3727.0, text="你好世界", speaker=0 if with_speakers else None),
    ]
    return Transcript.from_segments(segments, language="en", duration_s=3727.0, engine="t", model="m")


def single(text: str, start_s: float = 0.0, end_s: float = 1.0, speaker: int | None = None) -> Transcript:
    segment = Segment(start_s=start_s, end_s=end_s, text=text, speaker=speaker)
    return Transcript.from_segments([segment], language=None, duration_s=end_s, engine="t", model="m")


def vtt_captions(body: str) -> list[webvtt.Caption]:
    return webvtt.from_buffer(io.StringIO(body)).captions


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize("with_speakers", [True, False])
def test_every_format_renders_with_its_content_type(fmt: str, with_speakers: bool) -> None:
    body, content_type = render(transcript(with_speakers), fmt)
    assert content_type.startswith(CONTENT_TYPES[fmt])
    assert body.strip()
    assert isinstance(RENDERERS[fmt], Renderer) and RENDERERS[fmt].content_type == content_type


@pytest.mark.parametrize("with_speakers", [True, False])
def test_srt_parses_and_keeps_times(with_speakers: bool) -> None:
    body, content_type = render(transcript(with_speakers), "srt")
    assert content_type.startswith("application/x-subrip")
    cues = list(srt.parse(body))
    assert [c.index for c in cues] == [1, 2, 3]  # the blank segment made no cue
    assert cues[0].start == timedelta(0) and cues[0].end == timedelta(seconds=1.5)
    assert cues[1].start == timedelta(seconds=1.5) and cues[1].end == timedelta(seconds=1.501)  # zero-length: +1 ms
    assert cues[2].start == timedelta(hours=1, minutes=2, seconds=5, milliseconds=250)
    assert cues[2].end == timedelta(hours=1, minutes=2, seconds=7)
    assert all(c.content.strip() and c.end > c.start for c in cues)
    assert "\n" not in cues[1].content
    assert cues[0].content.startswith("Speaker 1: ") is with_speakers
    assert cues[1].content.startswith("Speaker 2: ") is with_speakers
    assert cues[2].content.endswith("你好世界")
    assert srt.compose(cues) == body  # the library writes exactly what we wrote


@pytest.mark.parametrize("with_speakers", [True, False])
def test_vtt_parses_escapes_and_tags_voices(with_speakers: bool) -> None:
    body, _ = render(transcript(with_speakers), "vtt")
    assert body.startswith("WEBVTT\n\n")
    captions = vtt_captions(body)
    assert [(c.start, c.end) for c in captions] == [
        ("00:00:00.000", "00:00:01.500"),
        ("00:00:01.500", "00:00:01.501"),
        ("01:02:05.250", "01:02:07.000"),
    ]
    assert "&lt;length&gt; &amp; odd line" in captions[1].raw_text
    assert "<length>" not in body
    assert ("<v Speaker 2>" in captions[1].raw_text) is with_speakers
    assert (captions[0].voice == "Speaker 1") if with_speakers else not captions[0].voice
    assert captions[2].text.endswith("你好世界")


def test_arrow_in_text_cannot_end_a_vtt_cue() -> None:
    body, _ = render(single("a --> b"), "vtt")
    captions = vtt_captions(body)
    assert len(captions) == 1 and captions[0].text == "a --&gt; b"


def test_times_past_100_hours_and_rounding_stay_ordered() -> None:
    body, _ = render(single("late", start_s=360_001.0005, end_s=360_001.0005), "srt")
    (cue,) = srt.parse(body)
    assert cue.start == timedelta(hours=100, seconds=1) and cue.end == timedelta(hours=100, seconds=1, milliseconds=1)
    (caption,) = vtt_captions(render(single("late", start_s=360_001.0, end_s=360_002.5), "vtt")[0])
    assert (caption.start, caption.end) == ("100:00:01.000", "100:00:02.500")


def test_inverted_or_negative_times_still_make_valid_cues() -> None:
    (cue,) = srt.parse(render(single("x", start_s=-0.5, end_s=-1.0), "srt")[0])
    assert cue.start == timedelta(0) and cue.end == timedelta(milliseconds=1)


def test_txt_is_one_sentence_a_line_and_spk_one_segment_a_line() -> None:
    # "Zero ... line" ends no sentence: it joins the next piece (the transcript is punctuated).
    assert render(transcript(False), "txt")[0] == "Hello there.\nZero <length> & odd line 你好世界\n"
    assert render(transcript(True), "spk")[0].splitlines() == [
        "Speaker 1: Hello there.",
        "Speaker 2: Zero <length> & odd line",
        "Speaker 1: 你好世界",
    ]
    assert all(line.startswith("Speaker 1: ") for line in render(transcript(False), "spk")[0].splitlines())


def test_oddasr_layout_is_one_line_per_cue() -> None:
    assert render(transcript(True), "srt-oddasr")[0].splitlines() == [
        "1 00:00:00,000 --> 00:00:01,500 Speaker 1: Hello there.",
        "2 00:00:01,500 --> 00:00:01,501 Speaker 2: Zero <length> & odd line",
        "3 01:02:05,250 --> 01:02:07,000 Speaker 1: 你好世界",
    ]
    assert render(transcript(False), "srt-oddasr")[0].splitlines()[1].endswith(" Speaker 1: Zero <length> & odd line")


def test_text_joins_cjk_without_spaces_and_latin_with() -> None:
    assert transcript(False).text == "Hello there. Zero <length> & odd\nline 你好世界"
    joined = Transcript.from_segments(
        [Segment(start_s=0, end_s=1, text="你好"), Segment(start_s=1, end_s=2, text="世界")],
        language="zh",
        duration_s=2,
        engine="t",
        model="m",
    )
    assert joined.text == "你好世界"
    assert render(joined, "text")[0] == "你好世界\n"
    assert render(joined, "txt")[0] == "你好\n世界\n"  # unpunctuated: the engine's pieces stay lines


def test_json_formats() -> None:
    t = transcript(True)
    assert Transcript.model_validate_json(render(t, "json")[0]) == t
    assert json.loads(render(t, "openai_json")[0]) == {"text": t.text}
    assert "你好" in render(t, "openai_json")[0]  # not \\u-escaped
    verbose = json.loads(render(t, "verbose_json")[0])
    assert verbose["task"] == "transcribe" and verbose["language"] == "en" and verbose["text"] == t.text
    assert verbose["duration"] == 3727.0 and len(verbose["segments"]) == 4
    assert verbose["segments"][3] == {
        "id": 3,
        "seek": 0,
        "start": 3725.25,
        "end": 3727.0,
        "text": "你好世界",
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": 0.0,
        "compression_ratio": 0.0,
        "no_speech_prob": 0.0,
    }
    assert verbose["words"] == [
        {"word": "Hello", "start": 0.0, "end": 0.6},
        {"word": "there.", "start": 0.7, "end": 1.5},
    ]
    assert "words" not in json.loads(render(single("a"), "verbose_json")[0])


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_empty_transcript_renders_empty_but_valid(fmt: str) -> None:
    body, _ = render(Transcript(text="", segments=[], duration_s=3.0), fmt)
    if fmt == "srt":
        assert list(srt.parse(body)) == []
    elif fmt == "vtt":
        assert body == "WEBVTT\n" and vtt_captions(body) == []
    elif fmt in {"json", "openai_json", "verbose_json"}:
        assert json.loads(body)["text"] == ""
    else:
        assert body == ""


def test_txt_without_segments_falls_back_to_the_text() -> None:
    assert render(Transcript(text="just text"), "txt")[0] == "just text\n"


def test_unknown_format_lists_the_valid_ones() -> None:
    with pytest.raises(BadRequestError, match="srt, vtt") as caught:
        render(transcript(False), "docx")
    assert caught.value.http_status == 400
    assert set(ALL_FORMATS) == set(RENDERERS)


def pieces(*texts: str, speakers: tuple[int | None, ...] | None = None) -> Transcript:
    segments = [Segment(start_s=i, end_s=i + 1, text=text, speaker=speakers[i] if speakers else None)
                for i, text in enumerate(texts)]
    return Transcript.from_segments(segments, language=None, duration_s=len(texts), engine="t", model="m")


def test_txt_lines_end_at_sentence_ends_merging_the_engines_pieces() -> None:
    english = pieces("Of all the noisiest authorities", "insisted on it,", "they said.", "Then came the rain!",
                     '"Who knew?"', "Not", "me...")
    assert render(english, "txt")[0] == (
        "Of all the noisiest authorities insisted on it, they said.\nThen came the rain!\n"
        '"Who knew?"\nNot me...\n'
    )
    chinese = pieces("今天天气", "很好。", "我们走吧！", "好")
    assert render(chinese, "txt")[0] == "今天天气很好。\n我们走吧！\n好\n"


def test_txt_ends_a_line_where_the_speaker_changes() -> None:
    spoken = pieces("So I think", "we should go.", "Wait", "for me.", speakers=(0, 0, 1, 1))
    assert render(spoken, "txt")[0] == "So I think we should go.\nWait for me.\n"
    interrupted = pieces("So I think", "No.", speakers=(0, 1))
    assert render(interrupted, "txt")[0] == "So I think\nNo.\n"
