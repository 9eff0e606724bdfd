"""The whole OpenAPI 3.1 document, assembled once per process and served as JSON."""

from __future__ import annotations

import functools
from typing import Any

from api.openapi.components import API_KEY_SCHEME, AUTH_ANSWERS, BEARER_SCHEME, HEADERS, SCHEMAS, SECURITY_SCHEMES
from api.openapi.operations import paths_of
from api.openapi.paths import TABLE
from api.streaming.routes import STREAM_PATH

OPENAPI_VERSION = "3.1.0"

_DESCRIPTION = f"""\
Distributed speech transcription: submit audio as a job and poll it (or get a signed webhook),
or call OddASR's and OpenAI's synchronous endpoints.

Errors are JSON, `{{"error": "..."}}`, with the job's `job_id` where one exists. 429 and 503
answers carry `Retry-After`.

**Authentication**: `Authorization: Bearer <key>` or `X-API-Key: <key>` (keys look like
`oddasr_sk_...`; an operator makes them with `oddasr keys create`). A server run with
`auth_mode=off` (the one-machine default) takes any request without a key.

**Live transcription** is a websocket, not an HTTP operation, so it is not listed below:
`{STREAM_PATH}` on this port, and any path on the OddASR (8101) and FunASR (10095) websocket
ports, speaking OddASR's, FunASR's or the native protocol. A key goes in a header, in the
`api_key` query parameter, or in OddASR's `token` field. Those two ports answer plain HTTP only
at `/healthz` and `/readyz` (404 elsewhere).

**Host and Origin**: a request whose `Host` names a host this server does not answer to
(`allowed_hosts`; IP addresses and loopback names always pass), or a browser's request or
websocket whose `Origin` is another site, is refused with 403 on every route and port.
"""


@functools.cache
def build_document(*, auth_required: bool, version: str) -> dict[str, Any]:
    """The document for a server whose auth is on or off: with auth off, the security
    requirement includes the empty one (no key needed), which is what that server does."""
    security: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}, {API_KEY_SCHEME: []}]
    if not auth_required:
        security.append({})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "OddASR", "version": version, "description": _DESCRIPTION,
                 "license": {"name": "MIT", "identifier": "MIT"}},
        "tags": [
            {"name": "jobs", "description": "Asynchronous jobs: submit, poll, fetch, cancel."},
            {"name": "oddasr", "description": "The original OddASR endpoints, synchronous."},
            {"name": "openai", "description": "OpenAI-compatible transcription."},
            {"name": "hotwords", "description": "Named hotword sets of a key, used by name on submission."},
            {"name": "speakers", "description": "Enrolled voices of a key, named in transcripts (identify_speakers)."},
            {"name": "admin", "description": "API keys (admin keys only)."},
            {"name": "service", "description": "Probes, queues and this contract."},
        ],
        "security": security,
        "paths": paths_of(TABLE, AUTH_ANSWERS),
        "components": {"schemas": SCHEMAS, "headers": HEADERS, "securitySchemes": SECURITY_SCHEMES},
    }
