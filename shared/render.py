"""Transcript renderers: pure functions, one per output format, and the registry of formats.

`srt` and `vtt` follow the SubRip and WebVTT rules that real players and parsers expect
(cues numbered from 1, blank lines between cues, `,` vs `.` before the milliseconds, escaped
text, no empty or zero-length cue). `srt-oddasr` keeps the original OddASR server's
one-line-per-cue layout for old clients that ask for it. `text`, `openai_json` and
`verbose_json` are what OpenAI's `response_format` values return.

Speakers are numbered from 1 for people (`Speaker 1` is engine speaker 0), as OddASR did.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from shared.errors import BadRequestError
from shared.render_models import Text, VerboseSegment, VerboseTranscription, VerboseWord
from shared.segment_timing import without_overlaps
from shared.transcript import Segment, Transcript, join_texts

logger = logging.getLogger(__name__)

TEXT_PLAIN = "text/plain; charset=utf-8"
APPLICATION_JSON = "application/json"
#: SubRip has no registered type; players take application/x-subrip. The charset keeps CJK
#: text readable in browsers, which otherwise guess Latin-1.
APPLICATION_SUBRIP = "application/x-subrip; charset=utf-8"
TEXT_VTT = "text/vtt; charset=utf-8"

#: A sentence ends with one of these (Latin and CJK), maybe followed by closing quotes or brackets.
_SENTENCE_END_RE = re.compile(r"[.!?…。！？]['\"”’)\]」』）]*$")

#: A cue must last at least this long, or players and parsers drop it.
MIN_CUE_MS = 1
_MS_PER_HOUR = 3_600_000
_MS_PER_MINUTE = 60_000
_MS_PER_SECOND = 1000


@dataclass(frozen=True)
class Cue:
    """A segment as a subtitle cue: whole milliseconds, end after start, one line of text."""

    start_ms: int
    end_ms: int
    text: str
    speaker_label: str


def _timestamp(total_ms: int, separator: str) -> str:
    """`HH:MM:SS<sep>mmm`; hours grow past 99 rather than wrap (both parsers accept that)."""
    hours, rest_ms = divmod(max(0, total_ms), _MS_PER_HOUR)
    minutes, rest_ms = divmod(rest_ms, _MS_PER_MINUTE)
    seconds, millis = divmod(rest_ms, _MS_PER_SECOND)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _speaker_label(segment: Segment) -> str:
    """The enrolled name when the voice was identified, else `Speaker N`, N from 1; a
    transcript without diarization is all one speaker."""
    if segment.speaker_name:
        return _one_line(segment.speaker_name)
    return f"Speaker {segment.speaker + 1}" if segment.speaker is not None else "Speaker 1"


def _one_line(text: str) -> str:
    """Collapse newlines and runs of spaces: a blank line inside a cue would end it early."""
    return " ".join(text.split())


def _has_speakers(transcript: Transcript) -> bool:
    return any(s.speaker is not None for s in transcript.segments)


def _cues(transcript: Transcript) -> list[Cue]:
    """The segments that have text, timed in whole ms, each lasting at least MIN_CUE_MS.

    Rounding to ms first and then enforcing end > start guarantees the printed times are
    ordered, which float comparisons before rounding would not. Cues never overlap (a player
    shows two at once, stacked): engines fit segments to the speech, and transcripts stored
    before they did are put in order here.
    """
    cues: list[Cue] = []
    for segment in without_overlaps(transcript.segments):
        text = _one_line(segment.text)
        if not text:
            logger.debug("skipping a segment without text at %.3f s", segment.start_s)
            continue
        start_ms = max(0, round(segment.start_s * 1000), cues[-1].end_ms if cues else 0)
        end_ms = max(round(segment.end_s * 1000), start_ms + MIN_CUE_MS)
        cues.append(Cue(start_ms=start_ms, end_ms=end_ms, text=text, speaker_label=_speaker_label(segment)))
    return cues


def _lines(lines: list[str]) -> str:
    """Lines joined with a final newline, or nothing at all for an empty transcript."""
    return "\n".join(lines) + "\n" if lines else ""


def _ends_sentence(text: str) -> bool:
    return bool(_SENTENCE_END_RE.search(text))


def _sentence_lines(segments: list[Segment]) -> list[str]:
    """The segments' texts, one sentence a line.

    Engines cut where the audio pauses, not where sentences end, so a piece that ends no
    sentence is joined to the next (CJK without a space). A change of speaker ends a line
    too. A transcript with no sentence-ending punctuation at all (a model without
    punctuation) keeps the engine's pieces as lines: they are the best sentence guess there is.
    """
    texts = [(text, s.speaker) for s in segments if (text := _one_line(s.text))]
    if not any(_ends_sentence(text) for text, _ in texts):
        return [text for text, _ in texts]
    lines: list[str] = []
    pending: list[str] = []
    pending_speaker: int | None = None
    for text, speaker in texts:
        if pending and speaker != pending_speaker:
            lines.append(join_texts(pending))
            pending = []
        pending.append(text)
        pending_speaker = speaker
        if _ends_sentence(text):
            lines.append(join_texts(pending))
            pending = []
    if pending:
        lines.append(join_texts(pending))
    return lines


def render_txt(transcript: Transcript) -> str:
    """OddASR `txt`: one sentence a line; the whole text if there are no segments."""
    lines = _sentence_lines(transcript.segments)
    if not lines and transcript.text.strip():
        lines = [_one_line(transcript.text)]
    return _lines(lines)


def render_spk(transcript: Transcript) -> str:
    """OddASR `spk`: `Speaker N: text` a line."""
    return _lines([f"{_speaker_label(s)}: {text}" for s in transcript.segments if (text := _one_line(s.text))])


def render_srt(transcript: Transcript) -> str:
    """Standard SubRip; the `Speaker N: ` prefix only when the transcript was diarized."""
    with_speakers = _has_speakers(transcript)
    blocks = []
    for index, cue in enumerate(_cues(transcript), start=1):
        text = f"{cue.speaker_label}: {cue.text}" if with_speakers else cue.text
        blocks.append(f"{index}\n{_timestamp(cue.start_ms, ',')} --> {_timestamp(cue.end_ms, ',')}\n{text}\n\n")
    # Every cue, the last included, ends with a blank line: what srt.compose writes too.
    return "".join(blocks)


def render_vtt(transcript: Transcript) -> str:
    """WebVTT: text escaped (`&`, `<`, `>`, so `-->` cannot end a cue), speakers as voice tags."""
    with_speakers = _has_speakers(transcript)
    blocks = ["WEBVTT\n"]
    for cue in _cues(transcript):
        text = escape(cue.text, quote=False)
        if with_speakers:
            text = f"<v {escape(cue.speaker_label, quote=False)}>{text}"
        blocks.append(f"{_timestamp(cue.start_ms, '.')} --> {_timestamp(cue.end_ms, '.')}\n{text}\n")
    return "\n".join(blocks)


def render_srt_oddasr(transcript: Transcript) -> str:
    """The original OddASR `srt`: `idx start --> end Speaker N: text`, one line per cue.

    Not SubRip (no blank lines, no line break after the times); kept because old clients
    parse exactly this. Cues are numbered from 1, like SubRip.
    """
    return _lines(
        [
            f"{index} {_timestamp(cue.start_ms, ',')} --> {_timestamp(cue.end_ms, ',')} {cue.speaker_label}: {cue.text}"
            for index, cue in enumerate(_cues(transcript), start=1)
        ]
    )


def render_json(transcript: Transcript) -> str:
    """The Transcript itself: everything, loadable again with Transcript.model_validate_json."""
    return transcript.model_dump_json()


def render_openai_json(transcript: Transcript) -> str:
    """OpenAI `response_format=json`."""
    return json.dumps(Text(text=transcript.text).model_dump(), ensure_ascii=False)


def render_text(transcript: Transcript) -> str:
    """OpenAI `response_format=text`: the whole text, with a final newline."""
    return transcript.text + "\n" if transcript.text else ""


def _seconds(value_s: float) -> float:
    """Times in JSON to the millisecond: float noise like 1.2000000000000002 helps nobody."""
    return round(value_s, 3)


def render_verbose_json(transcript: Transcript) -> str:
    """OpenAI `verbose_json`: segments always, `words` only when the engine gave word times.

    Fields OpenAI's SDKs require but that our engines do not produce (tokens, log
    probabilities) carry neutral values, so typed clients still parse the answer.
    """
    body = VerboseTranscription(
        task="transcribe", language=transcript.language or "", duration=_seconds(transcript.duration_s),
        text=transcript.text,
        segments=[VerboseSegment(id=index, seek=0, start=_seconds(s.start_s), end=_seconds(s.end_s), text=s.text,
                                 tokens=[], temperature=0.0, avg_logprob=0.0, compression_ratio=0.0,
                                 no_speech_prob=0.0)
                  for index, s in enumerate(without_overlaps(transcript.segments))],
    )
    words = [VerboseWord(word=w.word, start=_seconds(w.start_s), end=_seconds(w.end_s))
             for s in transcript.segments for w in s.words]
    if words:
        body.words = words
    return json.dumps(body.model_dump(exclude_unset=True), ensure_ascii=False)


@dataclass(frozen=True)
class Renderer:
    """One output format: the function that renders it and the Content-Type to send it with."""

    name: str
    content_type: str
    function: Callable[[Transcript], str]

    def __call__(self, transcript: Transcript) -> str:
        return self.function(transcript)


#: Format name -> renderer: every value a client may pass as `output_format` / `response_format`.
RENDERERS: dict[str, Renderer] = {
    renderer.name: renderer
    for renderer in (
        Renderer("txt", TEXT_PLAIN, render_txt),
        Renderer("spk", TEXT_PLAIN, render_spk),
        Renderer("srt", APPLICATION_SUBRIP, render_srt),
        Renderer("vtt", TEXT_VTT, render_vtt),
        Renderer("json", APPLICATION_JSON, render_json),
        Renderer("srt-oddasr", TEXT_PLAIN, render_srt_oddasr),
        Renderer("text", TEXT_PLAIN, render_text),
        Renderer("openai_json", APPLICATION_JSON, render_openai_json),
        Renderer("verbose_json", APPLICATION_JSON, render_verbose_json),
    )
}


def render(transcript: Transcript, fmt: str) -> tuple[str, str]:
    """(body, content type) of `transcript` in format `fmt`; BadRequestError for an unknown one."""
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise BadRequestError(f"unknown format {fmt!r}: use one of {', '.join(RENDERERS)}")
    return renderer(transcript), renderer.content_type
