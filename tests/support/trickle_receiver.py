"""A hostile webhook receiver: it reads the event, promises a huge answer and trickles it.

`body` mode answers `200` with `Content-Length: 1000000000` and then one byte every
`interval_s` (after `burst_bytes` at once, if any); `headers` mode trickles the status line
itself, a byte at a time. Either way a sender without an overall deadline, or one that reads
the whole answer, is held for as long as the receiver likes. The receiver
counts the connections it holds, so a test can tell that a sender let go.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

PROMISED_BYTES = 1_000_000_000
_READ_CHUNK_BYTES = 65536


@dataclass
class TrickleReceiver:
    url: str
    interval_s: float
    mode: Literal["body", "headers"]
    burst_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Connections accepted so far, and those the sender has not closed yet.
    accepted: int = 0
    open_now: int = 0
    #: Seconds each closed connection was held, from accept to the sender's close.
    held_s: list[float] = field(default_factory=list)

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.accepted, self.open_now


def _read_request(conn: socket.socket) -> None:
    """Read headers and a Content-Length body, so the sender's send completes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(_READ_CHUNK_BYTES)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(_READ_CHUNK_BYTES)
        if not chunk:
            return
        body += chunk


def _serve(receiver: TrickleReceiver, conn: socket.socket, stop: threading.Event) -> None:
    accepted_s = time.monotonic()
    with receiver.lock:
        receiver.accepted += 1
        receiver.open_now += 1
    try:
        _read_request(conn)
        prefix = b"HTTP/1.1 200 OK\r\nX-Slow: "  # headers mode: then a header value without end
        if receiver.mode == "body":
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {PROMISED_BYTES}\r\n\r\n".encode())
            conn.sendall(b"z" * receiver.burst_bytes)
            prefix = b""
        for offset in range(PROMISED_BYTES):
            if stop.wait(receiver.interval_s):
                break
            conn.sendall(prefix[offset:offset + 1] or b"y")
    except OSError:
        pass  # the sender let go: what this receiver waits to see
    finally:
        with contextlib.suppress(OSError):
            conn.close()
        with receiver.lock:
            receiver.open_now -= 1
            receiver.held_s.append(time.monotonic() - accepted_s)


@contextlib.contextmanager
def running_trickle_receiver(host: str = "127.0.0.1", interval_s: float = 2.0,
                             mode: Literal["body", "headers"] = "body",
                             burst_bytes: int = 0) -> Iterator[TrickleReceiver]:
    listener = socket.create_server((host, 0), backlog=128)
    receiver = TrickleReceiver(url=f"http://{host}:{listener.getsockname()[1]}", interval_s=interval_s, mode=mode,
                               burst_bytes=burst_bytes)
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_serve, args=(receiver, conn, stop), daemon=True).start()

    thread = threading.Thread(target=accept_loop, name="trickle-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=5)
