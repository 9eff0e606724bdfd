"""Request metrics of the API: requests by route and status, latency, open websockets.

A WSGI wrapper outside everything else (so requests the upload guard refuses before Flask
sees them count too) times each request; Flask names the route it matched in the environ.
The label is the url rule (`/v1/jobs/<job_id>`), never the raw path: one series per route,
however many jobs there are. Per request this costs two clock reads and two updates of
memory-mapped values (no system call, no lock a greenlet could wait on).

In gunicorn the numbers of every worker process land in the group's directory (see
`api.gunicorn_hooks`); outside it (tests, `create_app` in a script) they stay in memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from flask import Flask, request
from prometheus_client import Counter, Gauge, Histogram

#: Where Flask leaves the matched url rule for the wrapper.
ROUTE_ENVIRON_KEY = "oddasr.metrics_route"
#: The route label of requests that matched no route (404s, and requests refused before Flask).
UNMATCHED_ROUTE = "<unmatched>"
#: Up to the synchronous endpoints' default wait (sync_wait_timeout_s = 300 s).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

HTTP_REQUESTS = Counter("oddasr_http_requests_total", "HTTP requests answered by the API, by route and status.",
                        ["route", "method", "status"])
HTTP_REQUEST_DURATION = Histogram(
    "oddasr_http_request_duration_seconds",
    "Time from a request's arrival to its status and headers (websocket sessions excluded).",
    ["route", "method"], buckets=LATENCY_BUCKETS_S)
WEBSOCKETS_OPEN = Gauge("oddasr_websockets_open", "Websocket connections (stream sessions) open on the API now.",
                        multiprocess_mode="livesum")


def _name_route(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    """Flask's first hook of a request, before authentication, so refused requests are named too."""
    rule = request.url_rule
    request.environ[ROUTE_ENVIRON_KEY] = rule.rule if rule is not None else UNMATCHED_ROUTE


class _RecordingStartResponse:
    """start_response that remembers the status. It keeps `__self__` (gunicorn's response
    object) visible, because the upload guard closes a connection through it instead of
    draining a refused body: a plain wrapper function hid it and 413s read gigabytes."""

    def __init__(self, start_response: Any) -> None:
        self._start_response = start_response
        self.statuses: list[str] = []
        self.__self__ = getattr(start_response, "__self__", None)

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.statuses.append(status)
        if exc_info:
            return self._start_response(status, headers, exc_info)
        return self._start_response(status, headers)


class RequestMetrics:
    """The outermost WSGI layer: counts and times every request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        started_s = time.perf_counter()
        websocket = environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        recording_start_response = _RecordingStartResponse(start_response)
        statuses = recording_start_response.statuses

        if websocket:
            WEBSOCKETS_OPEN.inc()
        try:
            return self.app(environ, recording_start_response)
        finally:
            # A websocket session runs inside this call, and flask-sock ends it by raising
            # under gunicorn: record here, whatever happened.
            route = environ.get(ROUTE_ENVIRON_KEY, UNMATCHED_ROUTE)
            method = environ.get("REQUEST_METHOD", "")
            status = statuses[-1].split(" ", 1)[0] if statuses else ("101" if websocket else "500")
            HTTP_REQUESTS.labels(route, method, status).inc()
            if websocket:
                WEBSOCKETS_OPEN.dec()
            else:
                HTTP_REQUEST_DURATION.labels(route, method).observe(time.perf_counter() - started_s)


def register_request_metrics(app: Flask) -> None:
    """Call last in the app factory: the wrapper must sit outside every other WSGI layer."""
    from api.routes import metrics

    app.register_blueprint(metrics.blueprint)
    app.url_value_preprocessor(_name_route)
    app.wsgi_app = RequestMetrics(app.wsgi_app)  # type: ignore[method-assign]
