"""A cap on the websockets one client address holds open at once, checked before the upgrade.

An open websocket costs the API a greenlet, a reader thread's worth of buffers and, once it
speaks, a stream slot's wait: cheap each, but a single address opening thousands of them
would hold them all. This WSGI wrapper counts the websockets in progress per client address
(`REMOTE_ADDR`, the peer of the TCP connection) in this API process and answers the one past
`max_sockets_per_client` with 429 before a websocket exists, in the style of the upload cap
(api.upload_guard). The count is per process, like the upload cap: with several API
processes an address may hold up to that many times the limit.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from typing import Any

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 5


class OpenSockets:
    """Websockets open per client address, for one API process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, client: str) -> bool:
        with self._lock:
            if self.limit and self._open[client] >= self.limit:
                return False
            self._open[client] += 1
            return True

    def release(self, client: str) -> None:
        with self._lock:
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]


def _force_close(start_response: Any) -> None:
    """Close the connection after the answer: a refused upgrade is not kept alive."""
    response = getattr(start_response, "__self__", None)
    if response is not None and hasattr(response, "force_close"):
        response.force_close()


class SocketCap:
    """WSGI wrapper: every websocket upgrade holds one of its address's places until it ends
    (flask-sock runs the whole session inside the WSGI call)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.sockets = OpenSockets(limit)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            return self.app(environ, start_response)
        client = environ.get("REMOTE_ADDR", "")
        if not self.sockets.acquire(client):
            logger.info("refused a websocket from %s: %d already open", client, self.sockets.limit)
            _force_close(start_response)
            body = json.dumps({"error": f"too many websockets open at once from {client} (the limit is "
                                        f"{self.sockets.limit}, max_sockets_per_client); close one first"}).encode()
            start_response("429 Too Many Requests", [("Content-Type", "application/json"),
                                                     ("Content-Length", str(len(body))),
                                                     ("Retry-After", str(RETRY_AFTER_S))])
            return [body]
        try:
            return self.app(environ, start_response)
        finally:
            self.sockets.release(client)
