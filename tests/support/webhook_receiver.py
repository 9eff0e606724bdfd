"""A webhook receiver for tests (on 127.0.0.1 unless told): records every request, answers from a script."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    #: path -> status codes to answer in turn (the last one repeats); default 200.
    script: dict[str, list[int]] = field(default_factory=dict)
    #: path -> Location header to answer with (with a 3xx status in `script`).
    redirects: dict[str, str] = field(default_factory=dict)
    #: path -> seconds to wait before answering, in turn (then no wait): a slow receiver.
    delays_s: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


@contextmanager
def running_receiver(host: str = "127.0.0.1") -> Iterator[Receiver]:
    """`host`: the address to listen on; a container reaches the host at its network's gateway,
    a cluster bed host's address is listened on from inside its namespace."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server name)
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with receiver.lock:
                receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                codes = receiver.script.get(self.path, [200])
                status = codes.pop(0) if len(codes) > 1 else codes[0]
                delays_s = receiver.delays_s.get(self.path, [])
                delay_s = delays_s.pop(0) if delays_s else 0.0
            time.sleep(delay_s)
            self.send_response(status)
            if self.path in receiver.redirects:
                self.send_header("Location", receiver.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    receiver.url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
