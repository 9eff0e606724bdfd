"""Websocket endpoints: `/v1/stream` on the main port, and any path on the websocket ports.

The original OddASR served its websocket on `WS_PORT` (8101) at any path, and FunASR's
clients connect to port 10095 at `/`. One server process listens on all of them; a small
WSGI wrapper sends every websocket upgrade that arrives on a websocket port to the stream
route, remembering which protocol that port is known for (used only to word an error when
the first frame says nothing recognisable).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from flask import Flask, g, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from api.deps import deps
from api.streaming.client_sockets import SocketCap
from api.streaming.session import LiveConnection
from api.streaming.socket_gate import GatedSocket
from shared.config import Settings

STREAM_PATH = "/v1/stream"
PROTOCOL_ENVIRON_KEY = "oddasr.default_protocol"

logger = logging.getLogger(__name__)

sock = Sock()


@sock.route(STREAM_PATH)
def stream(ws) -> None:  # type: ignore[no-untyped-def]
    gate = request.environ.get("gunicorn.socket")
    if isinstance(gate, GatedSocket):
        gate.attach(ws)
    else:
        gate = None
    # The caller, when the upgrade carried a key (or auth is off); else the start message's.
    principal = g.get("principal")
    connection = LiveConnection(ws, deps(), request.environ.get(PROTOCOL_ENVIRON_KEY, "native"), principal,
                                resume_session_id=request.args.get("session", "")[:64], gate=gate)
    try:
        connection.run()
    except ConnectionClosed:
        raise  # flask-sock's own end of a session
    except Exception:
        # Past the upgrade the socket speaks websocket: an exception reaching Flask would be
        # written onto it as an HTTP 500 and break the client's framing. Close it instead.
        logger.exception("stream session failed")
        with contextlib.suppress(Exception):
            ws.close(1011, "internal error")


def _local_port(environ: dict[str, Any]) -> int | None:
    """The port the connection arrived on, from the socket itself (the Host header is the
    client's to choose)."""
    sock_obj = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")  # a GatedSocket delegates
    try:
        return int(sock_obj.getsockname()[1]) if sock_obj is not None else int(environ.get("SERVER_PORT", 0))
    except (OSError, ValueError, IndexError, TypeError):
        return None


class WebsocketPortRouter:
    def __init__(self, app: Any, protocols_by_port: dict[int, str]) -> None:
        self.app = app
        self.protocols_by_port = protocols_by_port

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            if "gunicorn.socket" in environ:
                environ["gunicorn.socket"] = GatedSocket(environ["gunicorn.socket"])
            protocol = self.protocols_by_port.get(_local_port(environ) or 0)
            if protocol is not None:
                environ["PATH_INFO"] = STREAM_PATH
                environ[PROTOCOL_ENVIRON_KEY] = protocol
        return self.app(environ, start_response)


def register_streaming(app: Flask, settings: Settings) -> None:
    app.config["SOCK_SERVER_OPTIONS"] = {
        # FunASR's clients offer the subprotocol "binary" and fail on any other answer.
        "subprotocols": ["binary"],
        "ping_interval": settings.stream_ping_interval_s,
        # The hard ceiling; the session refuses frames over the configured limit with a
        # message in the client's protocol before this one closes the socket.
        "max_message_size": 2 * settings.stream_max_frame_bytes,
    }
    sock.init_app(app)
    ports = {settings.ws_port: "oddasr"}
    if settings.funasr_ws_port:
        ports[settings.funasr_ws_port] = "funasr"
    app.wsgi_app = WebsocketPortRouter(app.wsgi_app, ports)  # type: ignore[method-assign]
    # Outermost of the two: a socket over its address's cap costs no more than a 429.
    app.wsgi_app = SocketCap(app.wsgi_app, settings.max_sockets_per_client)  # type: ignore[method-assign]
