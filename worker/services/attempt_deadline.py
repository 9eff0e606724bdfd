"""One overall deadline for a webhook attempt: name lookup, connect, send and answer together.

Socket timeouts are per operation, so a receiver that answers a byte every few seconds (or
trickles its status line) never trips one and holds the sender for as long as it likes. This
deadline is a watchdog instead: when it passes, every socket the attempt opened is shut down
(through a duplicate of its descriptor, so a TLS socket built on top of it is cut too), and
whatever call was blocked on it returns at once. `getaddrinfo` cannot be interrupted, so the
name lookup runs on a helper thread that the attempt stops waiting for at the deadline.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Any

AddrInfo = tuple[Any, Any, int, str, Any]


class DeadlinePassed(TimeoutError):
    """The attempt's deadline passed before this step could start or finish."""


class AttemptDeadline:
    """Use as a context manager around one attempt; pass it to the guarded session."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._expires_at_s = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> AttemptDeadline:
        self._expires_at_s = time.monotonic() + self.seconds
        self._timer.start()
        return self

    def __exit__(self, _type: type[BaseException] | None, _value: BaseException | None,
                 _traceback: TracebackType | None) -> None:
        self._timer.cancel()
        with self._lock:
            watched, self._watched = self._watched, []
        for duplicate in watched:
            duplicate.close()

    @property
    def expired(self) -> bool:
        return self._expired or time.monotonic() >= self._expires_at_s

    def remaining_s(self) -> float:
        """Seconds left; raises DeadlinePassed when none are."""
        left_s = self._expires_at_s - time.monotonic()
        if left_s <= 0:
            raise DeadlinePassed(f"the attempt's deadline of {self.seconds:g} s passed")
        return left_s

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down when the deadline passes (at once, if it already has)."""
        duplicate = sock.dup()
        with self._lock:
            self._watched.append(duplicate)
            expired = self._expired
        if expired:
            _shut(duplicate)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            watched = list(self._watched)
        for duplicate in watched:
            _shut(duplicate)

    def resolve(self, host: str, port: int) -> list[AddrInfo]:
        """`socket.getaddrinfo(host, port)` for stream sockets, given up at the deadline."""
        outcome: list[Any] = []
        done = threading.Event()

        def lookup() -> None:
            try:
                outcome.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
            except OSError as exc:
                outcome.append(exc)
            finally:
                done.set()

        threading.Thread(target=lookup, name="webhook-dns", daemon=True).start()
        if not done.wait(self.remaining_s()):
            raise DeadlinePassed(f"looking up {host} took longer than the attempt's deadline of {self.seconds:g} s")
        result = outcome[0]
        if isinstance(result, OSError):
            raise result
        return list(result)


def _shut(duplicate: socket.socket) -> None:
    # shutdown acts on the connection, not the descriptor: the attempt's own socket (or the
    # TLS socket that took over its descriptor) sees the end at once.
    with contextlib.suppress(OSError):
        duplicate.shutdown(socket.SHUT_RDWR)
