"""HTTP-level abuse (issue 17, items 2, 5 and 10): bodies past a route's limit, a rebinding
page's Host, a foreign page's websocket, and the HTTP API on a websocket port.

The body cases send a 190 MiB chunked body and stop as soon as the API answers; the figure is
the API's resident memory growth while it ran (sampled every 20 ms), the status, and how much of
the body the client got into the socket before the answer came (what the API read is at most
that).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import requests

from bench.abuse_cases import Case
from tests.support.raw_http import handshake_status, send_chunked

if TYPE_CHECKING:
    from tests.support.stack import Stack

BODY_BYTES = 190 * 1024 * 1024
RSS_SAMPLE_INTERVAL_S = 0.02
REBINDING_HOST = "rebind.attacker.example"


class PeakRss:
    """The API's peak resident memory while the block runs, in MB."""

    def __init__(self, stack: Stack) -> None:
        from bench.abuse import api_rss_mb  # the harness' own measure of the API's memory

        self._measure = lambda: api_rss_mb(stack)
        self.before_mb = self._measure()
        self.peak_mb = self.before_mb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_INTERVAL_S):
            self.peak_mb = max(self.peak_mb, self._measure())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._measure())


def _chunked_flood(method: str, path: str, content_type: str):  # type: ignore[no-untyped-def]
    def attack(stack: Stack) -> str:
        with PeakRss(stack) as rss:
            status, _answer, sent_bytes = send_chunked(stack.settings.port, method, path, BODY_BYTES,
                                                       f"Content-Type: {content_type}\r\n")
        return (f"status {status or 'reset'}, {sent_bytes / 2**20:.1f} of {BODY_BYTES / 2**20:.0f} MiB sent, "
                f"API RSS +{rss.peak_mb - rss.before_mb:.1f} MB")
    return attack


def _rebinding(stack: Stack) -> str:
    port = stack.settings.port
    jobs = requests.get(stack.url("/v1/jobs"), headers={"Host": f"{REBINDING_HOST}:{port}"}, timeout=10)
    socket_status = handshake_status(stack.settings.ws_port, f"127.0.0.1:{stack.settings.ws_port}",
                                     f"http://{REBINDING_HOST}")
    api_on_ws_port = requests.get(f"http://127.0.0.1:{stack.settings.ws_port}/v1/jobs", timeout=10)
    return (f"GET /v1/jobs as {REBINDING_HOST}: {jobs.status_code}; its page's websocket: {socket_status}; "
            f"/v1/jobs on ws_port: {api_on_ws_port.status_code}")


def cases() -> list[Case]:
    return [
        Case("http: 190 MiB chunked PUT /v1/hotwords", "413, API grows < 64 MB",
             _chunked_flood("PUT", "/v1/hotwords/flood", "text/plain")),
        Case("http: 190 MiB chunked POST /v1/keys (JSON)", "413, API grows < 64 MB",
             _chunked_flood("POST", "/v1/keys", "application/json")),
        Case("http: DNS-rebinding page (Host, Origin, ws port)", "403, 403, 404", _rebinding),
    ]
