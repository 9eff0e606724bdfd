"""The websocket ports (`ws_port`, `funasr_ws_port`) serve websockets and the health probes only.

One API process listens on the HTTP port and the websocket ports with one app, so without this
the whole HTTP API (uploads, jobs, keys) also answered on 8101 and 10095: ports an operator opens
for live clients only, often without the proxy that guards the HTTP port. A plain HTTP request
there other than `/healthz` or `/readyz` gets 404 with a pointer to the HTTP port.
"""

from __future__ import annotations

import json
from typing import Any

from api.upload_guard import force_close
from shared.config import Settings

#: What a plain HTTP request may ask for on a websocket port.
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


def arrival_port(environ: dict[str, Any]) -> int | None:
    """The port the connection arrived on, from the socket itself (the Host header is the
    client's to choose); SERVER_PORT where there is no socket (the Flask test client)."""
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    try:
        return int(sock.getsockname()[1]) if sock is not None else int(environ.get("SERVER_PORT", 0))
    except (OSError, ValueError, IndexError, TypeError):
        return None


def websocket_ports(settings: Settings) -> frozenset[int]:
    if settings.disable_stream:
        return frozenset()
    return frozenset(port for port in (settings.ws_port, settings.funasr_ws_port) if port and port != settings.port)


class WebsocketPortGuard:
    """WSGI layer: on a websocket port, let through upgrades and the health probes; 404 the rest."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.ports = websocket_ports(settings)
        self.http_port = settings.port

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if (not self.ports or environ.get("HTTP_UPGRADE", "").lower() == "websocket"
                or environ.get("PATH_INFO", "") in HEALTH_PATHS):
            return self.app(environ, start_response)
        port = arrival_port(environ)
        if port not in self.ports:
            return self.app(environ, start_response)
        force_close(start_response)
        body = json.dumps({"error": f"port {port} serves live-transcription websockets (and /healthz, /readyz)"
                                    f" only; the HTTP API is on port {self.http_port}"}).encode()
        start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
