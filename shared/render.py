"""Transcript renderers: pure functions, one per output format.

`srt` and `vtt` follow the SubRip and WebVTT rules real players and parsers expect (cues
numbered from 1, blank lines between cues, `,` vs `.` before milliseconds, escaped text).
`srt-oddasr` keeps the original OddASR server's one-line-per-cue layout for old clients.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape

from shared.errors import BadRequestError
from shared.transcript import Segment, Transcript

TEXT_PLAIN = "text/plain; charset=utf-8"
JSON = "application/json"

#: A cue must last at least this long, or players drop it.
MIN_CUE_MS = 1


def _timestamp(seconds: float, separator: str) -> str:
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _speaker_label(segment: Segment) -> str:
    return f"Speaker {segment.speaker + 1}" if segment.speaker is not None else "Speaker 1"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cues(transcript: Transcript) -> list[tuple[float, float, Segment]]:
    """Segments with text, with end strictly after start."""
    cues = []
    for segment in transcript.segments:
        if not _one_line(segment.text):
            continue
        end_s = max(segment.end_s, segment.start_s + MIN_CUE_MS / 1000)
        cues.append((segment.start_s, end_s, segment))
    return cues


def render_txt(transcript: Transcript) -> str:
    lines = [_one_line(s.text) for s in transcript.segments if _one_line(s.text)]
    if not lines and transcript.text.strip():
        lines = [_one_line(transcript.text)]
    return "\n".join(lines) + ("\n" if lines else "")


def render_spk(transcript: Transcript) -> str:
    lines = [f"{_speaker_label(s)}: {_one_line(s.text)}" for s in transcript.segments if _one_line(s.text)]
    return "\n".join(lines) + ("\n" if lines else "")


def _has_speakers(transcript: Transcript) -> bool:
    return any(s.speaker is not None for s in transcript.segments)


def render_srt(transcript: Transcript) -> str:
    with_speakers = _has_speakers(transcript)
    blocks = []
    for index, (start_s, end_s, segment) in enumerate(_cues(transcript), start=1):
        text = _one_line(segment.text)
        if with_speakers:
            text = f"{_speaker_label(segment)}: {text}"
        blocks.append(f"{index}\n{_timestamp(start_s, ',')} --> {_timestamp(end_s, ',')}\n{text}\n")
    return "\n".join(blocks)


def render_vtt(transcript: Transcript) -> str:
    with_speakers = _has_speakers(transcript)
    blocks = ["WEBVTT\n"]
    for start_s, end_s, segment in _cues(transcript):
        text = escape(_one_line(segment.text), quote=False)
        if with_speakers:
            text = f"<v {_speaker_label(segment)}>{text}"
        blocks.append(f"{_timestamp(start_s, '.')} --> {_timestamp(end_s, '.')}\n{text}\n")
    return "\n".join(blocks)


def render_srt_oddasr(transcript: Transcript) -> str:
    """The original OddASR layout: `idx start --> end Speaker N: text`, one line per cue."""
    lines = [
        f"{index} {_timestamp(start_s, ',')} --> {_timestamp(end_s, ',')} {_speaker_label(segment)}: "
        f"{_one_line(segment.text)}"
        for index, (start_s, end_s, segment) in enumerate(_cues(transcript), start=1)
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def render_json(transcript: Transcript) -> str:
    return transcript.model_dump_json()


def render_openai_json(transcript: Transcript) -> str:
    return json.dumps({"text": transcript.text}, ensure_ascii=False)


def render_text(transcript: Transcript) -> str:
    return transcript.text + "\n" if transcript.text else ""


def render_verbose_json(transcript: Transcript) -> str:
    """OpenAI's verbose_json: segments always, `words` only when the engine gave them."""
    body: dict[str, object] = {
        "task": "transcribe",
        "language": transcript.language or "",
        "duration": round(transcript.duration_s, 3),
        "text": transcript.text,
        "segments": [
            {"id": index, "seek": 0, "start": round(s.start_s, 3), "end": round(s.end_s, 3), "text": s.text,
             "tokens": [], "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 0.0,
             "no_speech_prob": 0.0}
            for index, s in enumerate(transcript.segments)
        ],
    }
    words = [{"word": w.word, "start": round(w.start_s, 3), "end": round(w.end_s, 3)}
             for s in transcript.segments for w in s.words]
    if words:
        body["words"] = words
    return json.dumps(body, ensure_ascii=False)


Renderer = Callable[[Transcript], str]

#: format name -> (renderer, content type). Formats offered to clients in `output_format`.
RENDERERS: dict[str, tuple[Renderer, str]] = {
    "txt": (render_txt, TEXT_PLAIN),
    "spk": (render_spk, TEXT_PLAIN),
    "srt": (render_srt, "application/x-subrip; charset=utf-8"),
    "vtt": (render_vtt, "text/vtt; charset=utf-8"),
    "json": (render_json, JSON),
    "srt-oddasr": (render_srt_oddasr, TEXT_PLAIN),
    "text": (render_text, TEXT_PLAIN),
    "openai_json": (render_openai_json, JSON),
    "verbose_json": (render_verbose_json, JSON),
}


def render(transcript: Transcript, fmt: str) -> tuple[str, str]:
    """(body, content type) of `transcript` in format `fmt`."""
    try:
        renderer, content_type = RENDERERS[fmt]
    except KeyError:
        raise BadRequestError(f"unknown format {fmt!r}: use one of {', '.join(RENDERERS)}") from None
    return renderer(transcript), content_type
