"""The relay's vocabulary: what the API and a stream worker say to each other about a session.

Nothing here knows a wire protocol or a model. A session request goes through the worker's
inbox list; everything after it goes over the session's two pub/sub channels as frames of a
one-line JSON header, a newline, and (for audio only) raw PCM s16le bytes. Audio stays binary:
base64 in JSON would cost a third more bytes and a copy on both sides for every 60 ms frame.

A session outlives a dropped client connection: the API that loses the client says DETACH,
and the worker holds the session for the resume window. An API serving the reconnected client
(any API process) says ATTACH with a new `epoch`; from then on the worker hears only frames of
that epoch and stamps its own with it, answers ATTACHED with how much audio it has, and
sends again the final sentences the client has not seen. A stale API (one that never noticed
its client left) hears nothing of its epoch any more and gives up.

Pub/sub delivers at most once and drops what nobody listens to, so every frame carries a
sequence number per direction and the fencing token of the claim: a receiver that sees a gap
ends the session with an error instead of transcribing audio with a hole in it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

#: API -> worker kinds.
AUDIO = "audio"
FLUSH = "flush"
STOP = "stop"
DETACH = "detach"
ATTACH = "attach"
KEEPALIVE = "keepalive"
#: worker -> API kinds.
READY = "ready"
PARTIAL = "partial"
FINAL = "final"
HEARTBEAT = "heartbeat"
ENDED = "ended"
ERROR = "error"
ATTACHED = "attached"

#: The `reason` of an ERROR whose session ended because its job was canceled (DELETE).
CANCELED_REASON = "canceled"


class SessionRequest(BaseModel):
    """What the API asks of the worker whose slot it claimed."""

    session_id: str
    job_id: str
    fence: int
    #: The worker ignores a request it pops after this (unix seconds): the API gave up on it.
    expires_at_s: float
    sample_rate_hz: int = 16000
    language: str | None = None
    hotwords: list[str] = Field(default_factory=list)
    #: Partial results are computed only for clients that show them.
    want_partials: bool = True
    protocol: str = ""
    max_session_s: float = 3 * 3600.0
    #: At the end, queue the recording as a file job: none, offline or diarize (shared.reprocess).
    reprocess: str = "none"
    #: FunASR runtime's mode (2pass, online, offline) and streaming-model settings, for engines
    #: with a streaming model; None: the engine's defaults.
    mode: Literal["2pass", "online", "offline"] = "2pass"
    chunk_size: tuple[int, int, int] | None = None
    encoder_chunk_look_back: int | None = None
    decoder_chunk_look_back: int | None = None
    #: Every final names its speaker; `speakers_owner`: the key whose voiceprints may name them
    #: ('' with auth off, as file jobs' owner).
    speakers: bool = False
    speakers_owner: str = ""


class RelayHeader(BaseModel):
    """The JSON line in front of every relay frame; fields beyond kind/seq/fence by kind."""

    kind: str
    seq: int
    fence: int
    #: Sender's clock (unix seconds) when the frame left: the relay's own overhead is measured
    #: from it. API and workers of one deployment share a clock source (NTP) or a machine.
    sent_at_s: float = 0.0
    # results
    text: str | None = None
    #: Partials: the part of `text` that will not change (grow-only protocols send only it).
    stable_text: str | None = None
    index: int | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    #: Finals: each word as [word, start_ms, end_ms] on the session clock.
    words: list[tuple[str, int, int]] | None = None
    #: Finals of a session that asked for speakers: the label (an enrolled name, else
    #: "Speaker N"), and for an enrolled voice its name and cosine similarity.
    speaker: str | None = None
    speaker_name: str | None = None
    speaker_similarity: float | None = None
    # heartbeats: PCM bytes the engine has consumed, for the API's flow control
    processed_bytes: int | None = None
    # end and errors
    reason: str | None = None
    message: str | None = None
    # audio: when the API received the frame from the client (unix seconds)
    received_at_s: float | None = None
    #: Which connection of the session the frame belongs to: 0 first, a new one per resume.
    epoch: int = 0
    # attached: the audio the worker has received, in bytes of the client's PCM
    received_bytes: int | None = None
    # ended: how many final sentences the whole session produced
    finals: int | None = None


def encode_frame(header: RelayHeader, payload: bytes = b"") -> bytes:
    return header.model_dump_json(exclude_none=True).encode() + b"\n" + payload


def decode_frame(data: bytes) -> tuple[RelayHeader, bytes]:
    """Split a relay frame; raises ValueError for anything that is not one."""
    line, sep, payload = data.partition(b"\n")
    if not sep:
        raise ValueError("a relay frame needs a header line")
    return RelayHeader.model_validate_json(line), payload
