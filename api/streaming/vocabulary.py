"""The one internal vocabulary every wire protocol adapter translates to and from.

Client side: start, audio, flush, stop, keepalive. Server side: started, partial, final,
ended, error. Adding a protocol is adding an adapter that speaks these; the session loop
and the relay never change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from shared import reprocess


@dataclass
class StartCommand:
    """What a client asked for when it opened its session."""

    #: A non-empty task id asks to continue an earlier session.
    task_id: str = ""
    message_id: str = ""
    token: str = ""
    sample_rate_hz: int = 16000
    language: str | None = None
    hotwords: list[str] = field(default_factory=list)
    #: A named hotword set of the key's (`hotword_set`), merged with `hotwords` as file jobs do;
    #: admission resolves it and records the set's name and version on the job.
    hotword_set: str | None = None
    hotword_set_version: str | None = None
    #: The client shows text while the person speaks (FunASR online/2pass, OddASR).
    want_partials: bool = True
    name: str = ""
    #: Where to POST the signed `stream.ended` event when the session ends (`callback_url`).
    callback_url: str | None = None
    #: The start message already ends the audio (FunASR's config with `is_speaking: false`).
    stop_at_once: StopCommand | None = None
    #: Transcribe the whole recording again as a file job at the end: none, offline, diarize.
    reprocess: str = "none"
    #: Resuming: the index of the last final sentence the client has (None: it does not say).
    last_final_index: int | None = None
    #: FunASR runtime's mode and streaming-model settings (None: the engine's defaults).
    mode: Literal["2pass", "online", "offline"] = "2pass"
    chunk_size: tuple[int, int, int] | None = None
    encoder_chunk_look_back: int | None = None
    decoder_chunk_look_back: int | None = None
    #: Every final names its speaker (the key's enrolled voices, else "Speaker N").
    speakers: bool = False


@dataclass(frozen=True)
class TimedWord:
    """One word of a final, in milliseconds on the session's clock."""

    word: str
    start_ms: int
    end_ms: int


def timed_words_of(raw: list[tuple[str, int, int]] | None) -> tuple[TimedWord, ...]:
    return tuple(TimedWord(str(word), int(start_ms), int(end_ms)) for word, start_ms, end_ms in raw or ())


@dataclass(frozen=True)
class SpeakerLabel:
    """Who said a final: `label` is what clients show (an enrolled name, else "Speaker N", never
    changed once sent); `name` and `similarity` only when an enrolled voiceprint matched."""

    label: str
    name: str | None = None
    similarity: float | None = None

    @classmethod
    def of(cls, header: Any) -> SpeakerLabel | None:
        """The speaker a relay header carries (shared.stream_messages.RelayHeader), if any."""
        if not getattr(header, "speaker", None):
            return None
        return cls(header.speaker, header.speaker_name, header.speaker_similarity)


@dataclass
class StopCommand:
    """End of audio: send the remaining finals, then end. `ack` asks for an explicit end
    acknowledgement (FunASR's `is_end`)."""

    ack: bool = False


@dataclass
class FlushCommand:
    """Finalise what was heard so far without ending the session."""


@dataclass
class KeepAliveCommand:
    """The client is still there (an explicit KeepAlive): silence is not the end of the
    session, up to `stream_keepalive_max_s` without audio."""


@dataclass
class IgnoredCommand:
    """A text frame the protocol has no use for; it says nothing, not even that the client
    is there (it resets no timer)."""


Command = StartCommand | StopCommand | FlushCommand | KeepAliveCommand | IgnoredCommand


class ProtocolError(Exception):
    """A frame the protocol does not allow; `kind` is one of the error kinds below."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def json_object(text: str) -> dict[str, Any]:
    """A client's text frame as a JSON object, or the bad-request error every protocol gives."""
    try:
        frame = json.loads(text)
    except ValueError:
        raise ProtocolError(BAD_REQUEST, "messages must be JSON objects") from None
    if not isinstance(frame, dict):
        raise ProtocolError(BAD_REQUEST, "messages must be JSON objects")
    return frame


def reprocess_of(frame: dict[str, Any]) -> str:
    """The start option `reprocess` (any protocol may carry it), checked."""
    value = frame.get("reprocess") or reprocess.NONE
    if value not in reprocess.MODES:
        raise ProtocolError(BAD_REQUEST, f"reprocess must be one of {', '.join(reprocess.MODES)}, "
                                         f"not {str(value)[:40]!r}")
    return str(value)


def last_final_index_of(frame: dict[str, Any], name: str) -> int | None:
    value = frame.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ProtocolError(BAD_REQUEST, f"{name} must be the index of the last final sentence received, or -1")
    return value


def hotword_set_of(frame: dict[str, Any]) -> str | None:
    """The hotword set a start message names (`hotword_set`), unresolved; a non-string is refused."""
    raw = frame.get("hotword_set")
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ProtocolError(BAD_REQUEST, "hotword_set must be the name of a hotword set (GET /v1/hotwords)")
    return raw


def speakers_of(frame: dict[str, Any]) -> bool:
    """The start option `speakers` (any protocol may carry it; servers that do not know it
    ignore it): true or false."""
    value = frame.get("speakers", False)
    if not isinstance(value, bool):
        raise ProtocolError(BAD_REQUEST, "speakers must be true or false")
    return value


def callback_url_of(frame: dict[str, Any]) -> str | None:
    """The webhook URL a start message carries (`callback_url`, or `webhook_url`), unchecked."""
    raw = frame.get("callback_url") or frame.get("webhook_url")
    return str(raw) if raw else None


#: Error kinds every adapter maps to its own codes.
BAD_REQUEST = "bad_request"
UNKNOWN_TASK = "unknown_task"
FRAME_TOO_LARGE = "frame_too_large"
BUSY = "busy"
DISABLED = "disabled"
WORKER_LOST = "worker_lost"
UNAVAILABLE = "unavailable"
MAX_LENGTH = "max_length"
INTERNAL = "internal"
#: The session's job was canceled (DELETE /v1/jobs/{id}) while it ran.
CANCELED = "canceled"
#: No key, or an invalid one (HTTP would answer 401).
UNAUTHORIZED = "unauthorized"
#: A per-key limit refused the session (HTTP would answer 429).
LIMITED = "limited"
#: KeepAlives held the session open without audio for `stream_keepalive_max_s`: it was ended.
IDLE = "idle"


class WireProtocol(Protocol):
    """An adapter: frames of one wire protocol <-> the vocabulary above."""

    name: str

    def parse_start(self, text: str) -> StartCommand: ...

    def parse_control(self, text: str) -> Command: ...

    def on_started(self, job_id: str, resumed_bytes: int | None = None) -> list[str]: ...

    def on_partial(self, index: int, text: str, start_ms: int, end_ms: int,
                   stable_text: str | None = None) -> list[str]:
        """`text` is the whole hypothesis (it may change), `stable_text` its part that will not
        (None: all of it). Protocols whose partials may only grow send `stable_text` alone."""
        ...

    def on_final(self, index: int, text: str, start_ms: int, end_ms: int, words: tuple[TimedWord, ...] = (),
                 speaker: SpeakerLabel | None = None) -> list[str]:
        """`words`: the sentence's words with their times; `speaker`: who said it, for sessions
        that asked for speakers (None otherwise)."""
        ...

    def on_end(self, ack: bool, audio_s: float = 0.0, finals: int | None = None) -> list[str]: ...

    def on_error(self, kind: str, message: str) -> list[str]: ...
