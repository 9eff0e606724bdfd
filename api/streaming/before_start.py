"""What a socket may make the API hold before its session has started.

Until its start message is read, its key checked and a worker holds it, a client is a
stranger, and a cheap one to multiply. So, until then:

- audio before the start message (FunASR's clients may send some) is kept up to
  `stream_max_early_audio_bytes`, and refused outright while keys are required and none has
  been checked (the upgrade carried none: the key comes in the start message);
- no single frame may exceed `MAX_START_FRAME_BYTES` (or the early audio limit, if larger):
  simple-websocket assembles a whole frame before the session sees it, so its own size limit
  is lowered meanwhile (a larger frame closes the socket with 1009 "Message is too big");
- the frames read ahead of the session (api.streaming.socket_gate) are bounded by the same,
  so a client that sends while its session waits for a stream slot is slowed by TCP.

Once the session has started, the normal limits apply again (`relax`).
"""

from __future__ import annotations

import time
from typing import Any

from api.streaming import vocabulary as v
from api.streaming.socket_gate import GatedSocket
from shared.config import Settings

#: A start message is a few hundred bytes; hotwords and all, far below this.
MAX_START_FRAME_BYTES = 64 * 1024
#: A client must send its start message (or config) within this after connecting.
FIRST_FRAME_TIMEOUT_S = 10.0

AUDIO_BEFORE_KEY_MESSAGE = (
    "audio arrived before the start message, and this server accepts audio only once the API key is checked:"
    " send the start message (with the key in 'token', or 'api_key' in a FunASR config) before any audio,"
    " or send the key with the upgrade request ('Authorization: Bearer <key>' or the 'api_key' query parameter)")


class BeforeStart:
    """The limits of one socket until its session starts."""

    def __init__(self, ws: Any, gate: GatedSocket | None, settings: Settings, *, authenticated: bool) -> None:
        self.ws = ws
        self.gate = gate
        #: Early audio this socket may send: none before a key is checked (when keys are required).
        self.max_early_audio_bytes = settings.stream_max_early_audio_bytes if authenticated else 0
        self._authenticated = authenticated
        self._frame_bytes = max(MAX_START_FRAME_BYTES, self.max_early_audio_bytes)
        self._normal_message_bytes = getattr(ws, "max_message_size", None)
        self._normal_read_ahead_bytes = gate.read_ahead_bytes if gate is not None else 0

    def tighten(self) -> None:
        self.ws.max_message_size = self._frame_bytes
        if self.gate is not None:
            self.gate.read_ahead_bytes = self._frame_bytes

    def relax(self) -> None:
        """The session has started: its frames go to a worker that holds it."""
        self.ws.max_message_size = self._normal_message_bytes
        if self.gate is not None:
            self.gate.read_ahead_bytes = self._normal_read_ahead_bytes

    def first_frames(self) -> tuple[str, list[bytes]]:
        """The start message's text and the audio sent before it; `v.ProtocolError` when the
        client breaks the limits above or sends no start message in time."""
        early_audio: list[bytes] = []
        early_bytes = 0
        deadline_s = time.monotonic() + FIRST_FRAME_TIMEOUT_S
        while True:
            frame = self.ws.receive(timeout=max(0.0, deadline_s - time.monotonic()))
            if frame is None:
                raise v.ProtocolError(v.BAD_REQUEST, f"no start message within {FIRST_FRAME_TIMEOUT_S:.0f} s of "
                                                     "connecting")
            if isinstance(frame, str):
                return frame, early_audio
            if not self._authenticated:
                raise v.ProtocolError(v.UNAUTHORIZED, AUDIO_BEFORE_KEY_MESSAGE)
            early_bytes += len(frame)
            if early_bytes > self.max_early_audio_bytes:
                raise v.ProtocolError(v.FRAME_TOO_LARGE, f"more than {self.max_early_audio_bytes} bytes of audio"
                                                         " before the start message; send the start message first")
            early_audio.append(frame)
