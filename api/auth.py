"""Who is calling: the API key of each request, checked before any route runs.

Keys arrive as `Authorization: Bearer <key>` (what the OpenAI SDK sends) or `X-API-Key`;
a websocket may also carry one in the `api_key` query parameter (browsers cannot set
headers on a websocket) or, for OddASR's protocol, in the start message's `token` field,
which the stream session checks itself. With `auth_mode=off` every caller is the anonymous
admin and keys are ignored (the OpenAI SDK always sends some key, even to a local server).
"""

from __future__ import annotations

import logging

from flask import Flask, g, request

from api.deps import deps
from api.principal import ANONYMOUS, Principal, principal_of
from shared.auth.api_key_tokens import split_token
from shared.errors import ForbiddenError, UnauthorizedError

logger = logging.getLogger(__name__)

#: Answered to anyone: probes, the document that says how to authenticate, and the web page
#: with its static files (it asks for the key itself, then sends it on every API call).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/"})
PUBLIC_PREFIXES = ("/docs", "/web/static/")
#: Prometheus' scrape path: public too, unless `metrics_require_key` (then an admin key).
METRICS_PATH = "/metrics"
WEBSOCKET_KEY_QUERY_PARAMETER = "api_key"

MISSING_KEY_MESSAGE = ("this server needs an API key: send it as 'Authorization: Bearer <key>' or in an"
                       " 'X-API-Key' header (an operator makes one with `oddasr keys create`)")
INVALID_KEY_MESSAGE = "the API key is not valid: unknown, mistyped or revoked"


def authenticate_token(token: str) -> Principal:
    """The principal a key names, or 401. Only the key's id is ever logged."""
    d = deps()
    key = d.api_keys.verify(token.strip())
    if key is None:
        parts = split_token(token.strip())
        logger.info("refused an API key (%s)", f"id {parts[0]}" if parts else "malformed")
        raise UnauthorizedError(INVALID_KEY_MESSAGE)
    return principal_of(key, d.settings)


def _presented_key() -> str | None:
    authorization = request.headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if request.headers.get("X-API-Key", "").strip():
        return request.headers["X-API-Key"].strip()
    if is_websocket_upgrade():
        return request.args.get(WEBSOCKET_KEY_QUERY_PARAMETER) or None
    return None


#: The websocket route (api.streaming.routes.STREAM_PATH; the websocket ports are routed to it).
WEBSOCKET_PATH = "/v1/stream"


def is_websocket_upgrade() -> bool:
    """A websocket upgrade of the stream route. An `Upgrade` header on any other route must not
    count: it would let a plain HTTP request skip authentication."""
    rule = request.url_rule
    return (rule is not None and rule.rule == WEBSOCKET_PATH
            and request.headers.get("Upgrade", "").lower() == "websocket")


def _authenticate() -> None:
    settings = deps().settings
    if settings.auth_mode == "off":
        g.principal = ANONYMOUS
        return
    if (request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES)
            or (request.path == METRICS_PATH and not settings.metrics_require_key)):
        g.principal = None
        return
    token = _presented_key()
    if token is None:
        if is_websocket_upgrade():
            g.principal = None  # the stream session reads the key from the start message
            return
        raise UnauthorizedError(MISSING_KEY_MESSAGE)
    g.principal = authenticate_token(token)
    deps().limiter.check_request_rate(g.principal)


def current_principal() -> Principal:
    """The caller of this request (routes run only after `_authenticate` let them)."""
    principal = g.get("principal")
    if principal is None:
        raise UnauthorizedError(MISSING_KEY_MESSAGE)
    return principal


def optional_principal() -> Principal | None:
    """The caller of a public path where it presented a valid key (or auth is off), else None:
    a public path answers a missing or wrong key too, only with less (see /readyz)."""
    principal = g.get("principal")
    if principal is not None:
        return principal
    token = _presented_key()
    if token is None:
        return None
    try:
        return authenticate_token(token)
    except UnauthorizedError:
        return None


def require_admin() -> Principal:
    principal = current_principal()
    if not principal.is_admin:
        raise ForbiddenError(f"this needs an admin key; key {principal.key_id} is not one")
    return principal


def register_auth(app: Flask) -> None:
    app.before_request(_authenticate)
