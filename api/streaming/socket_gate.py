"""Backpressure for websockets: stop reading the client's socket while its frames wait.

simple-websocket reads the socket in a thread of its own into an unbounded list, whether or
not the session takes the frames. When the relay pauses a session (its worker holds too much
unprocessed audio), that list would grow instead of TCP slowing the client down. This proxy
sits between simple-websocket and the socket: its `recv` waits while the frames already read
exceed a bound, so the kernel's window fills and the client's sends block.
"""

from __future__ import annotations

import time
from typing import Any

#: Frames read ahead of the session, in bytes, before the socket is left unread.
READ_AHEAD_BYTES = 512 * 1024
WAIT_STEP_S = 0.01


class GatedSocket:
    def __init__(self, sock: Any, read_ahead_bytes: int = READ_AHEAD_BYTES) -> None:
        self._sock = sock
        #: The bound; the session lowers it until it has started (api.streaming.before_start).
        self.read_ahead_bytes = read_ahead_bytes
        self._buffer: list[Any] | None = None
        self._ws: Any = None
        self._closed = False

    def attach(self, ws: Any) -> None:
        """Watch this websocket's list of frames read but not yet taken."""
        self._ws = ws
        self._buffer = ws.input_buffer

    def _held_bytes(self) -> int:
        buffer = self._buffer
        if not buffer:
            return 0
        return sum(len(frame) for frame in list(buffer))

    def _session_open(self) -> bool:
        """A websocket the session closed takes no more frames: its reader must not wait (and
        hold its unread frames) for ever, but read on, find the socket closed and end."""
        return self._ws is None or bool(self._ws.connected)

    def recv(self, size: int, *flags: int) -> bytes:
        while not self._closed and self._session_open() and self._held_bytes() > self.read_ahead_bytes:
            # simple-websocket calls recv only once the socket is readable: the client is
            # sending, so it is alive, even though its pong sits unread behind its audio.
            if self._ws is not None:
                self._ws.pong_received = True
            time.sleep(WAIT_STEP_S)  # a greenlet under gevent: nothing else waits for it
        data = self._sock.recv(size, *flags)
        if data and self._ws is not None:
            # Bytes from the client prove it alive as well as a pong does. A client that sends
            # audio and reads its results only at the end (as many scripts do) stops reading its
            # socket once its own queue of results is full, so it reads no ping and answers none:
            # it must not be dropped for that while it is still sending.
            self._ws.pong_received = True
        return data

    def close(self) -> None:
        self._closed = True
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
