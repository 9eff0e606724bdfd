"""Request bodies that cannot hold the API hostage.

gevent makes a waiting connection cheap, but not free: a client that trickles one byte a
second keeps a greenlet, a socket and a temp file for as long as it likes, and a thousand of
them from one address add up. This WSGI wrapper gives every request body

- an idle timeout (no read may wait longer than `upload_idle_timeout_s`),
- a minimum average rate after a grace period (`upload_min_bytes_per_s` after
  `upload_grace_s`), answered with 408 when missed,
- a cap on bodies one client address sends at once (`max_concurrent_uploads_per_client`),
  answered with 429 before a byte of the body is read; the slot is given back as soon as the
  body has been read (a synchronous /v1/asr call that then waits for its job holds none).

A 4xx answered while part of the body is still unread closes the connection: gunicorn would
otherwise read (and throw away) the rest before the next request, for as long as the client
sends, which for an endless chunked upload is forever.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from typing import Any

from shared.config import Settings
from shared.errors import RequestTimeoutError

logger = logging.getLogger(__name__)

READ_SIZE_ANY = -1


def _timeout_class() -> Any:
    """gevent's Timeout, which interrupts a read blocked in the (monkey-patched) socket; None
    where gevent is not running this process (the Flask test client, werkzeug's server)."""
    try:
        from gevent import Timeout
        from gevent.monkey import is_module_patched
    except ImportError:  # pragma: no cover - gevent is a dependency of the API
        return None
    return Timeout if is_module_patched("socket") else None


class ClientUploads:
    """Bodies in progress per client address, for one API process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, client: str) -> bool:
        with self._lock:
            if self.limit and self._active[client] >= self.limit:
                return False
            self._active[client] += 1
            return True

    def release(self, client: str) -> None:
        with self._lock:
            self._active[client] -= 1
            if self._active[client] <= 0:
                del self._active[client]


class GuardedInput:
    """`wsgi.input` with deadlines; releases the client's upload slot at the end of the body."""

    def __init__(self, stream: Any, settings: Settings, content_length: int | None,
                 on_done) -> None:  # type: ignore[no-untyped-def]
        self._stream = stream
        self._content_length = content_length
        self._idle_timeout_s = settings.upload_idle_timeout_s
        self._min_rate = max(1, settings.upload_min_bytes_per_s)
        self._grace_s = settings.upload_grace_s
        self._started_s = time.monotonic()
        self._read_bytes = 0
        self._on_done = on_done
        self._timeout = _timeout_class()
        self.finished = False

    def _guarded(self, method: str, *args: Any) -> bytes:
        now_s = time.monotonic()
        deadline_s = self._started_s + self._grace_s + self._read_bytes / self._min_rate
        budget_s = min(self._idle_timeout_s, deadline_s - now_s)
        if budget_s <= 0:
            raise RequestTimeoutError(
                f"the upload is arriving too slowly ({self._read_bytes} bytes in {now_s - self._started_s:.0f} s; "
                f"at least {self._min_rate} bytes/s are needed)")
        if self._timeout is None:
            data = getattr(self._stream, method)(*args)
        else:
            try:
                with self._timeout(budget_s):
                    data = getattr(self._stream, method)(*args)
            except self._timeout:
                raise RequestTimeoutError(
                    f"the upload stalled: no data for {budget_s:.0f} s, or under {self._min_rate} bytes/s"
                ) from None
        self._read_bytes += len(data)
        if not data or (self._content_length is not None and self._read_bytes >= self._content_length):
            self._finish()
        return data

    def _finish(self) -> None:
        if not self.finished:
            self.finished = True
            self._on_done()

    def read(self, size: int = READ_SIZE_ANY) -> bytes:
        return self._guarded("read", size)

    def readline(self, size: int = READ_SIZE_ANY) -> bytes:
        return self._guarded("readline", size)

    def readlines(self, hint: int = READ_SIZE_ANY) -> list[bytes]:
        lines = []
        while line := self.readline():
            lines.append(line)
        return lines

    def __iter__(self):  # type: ignore[no-untyped-def]
        while line := self.readline():
            yield line


def _content_length(environ: dict[str, Any]) -> int | None:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


def _has_body(environ: dict[str, Any]) -> bool:
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        return True
    return (_content_length(environ) or 0) > 0


def force_close(start_response: Any) -> None:
    """Ask gunicorn to close this connection after the answer instead of draining the body."""
    response = getattr(start_response, "__self__", None)
    if response is not None and hasattr(response, "force_close"):
        response.force_close()


class UploadGuard:
    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.uploads = ClientUploads(settings.max_concurrent_uploads_per_client)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not _has_body(environ) or environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            return self.app(environ, start_response)
        client = environ.get("REMOTE_ADDR", "")
        if not self.uploads.acquire(client):
            force_close(start_response)
            body = json.dumps({"error": f"too many uploads at once from {client} (the limit is "
                                        f"{self.uploads.limit}); wait for one to finish"}).encode()
            start_response("429 Too Many Requests", [("Content-Type", "application/json"),
                                                     ("Content-Length", str(len(body))), ("Retry-After", "5")])
            return [body]
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                self.uploads.release(client)

        chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        guarded = GuardedInput(environ["wsgi.input"], self.settings, None if chunked else _content_length(environ),
                               release)
        environ["wsgi.input"] = guarded

        def guarded_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status[:1] == "4" and not guarded.finished:
                force_close(start_response)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        try:
            return self.app(environ, guarded_start_response)
        finally:
            release()
