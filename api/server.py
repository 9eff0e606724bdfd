"""The API's gunicorn worker class: gevent, with the server's own errors answered in JSON.

gunicorn answers some requests before the application sees them (a request line longer
than its limit: 414; a negative Content-Length or a malformed header: 400) with an HTML
page. Every answer of this API is JSON, so this worker writes those as
`{"error": "..."}` too, with the same status.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    body = json.dumps({"error": f"{reason}: {mesg}" if mesg else reason}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin1")
    util.write_nonblock(sock, head + body)


class JsonErrorGeventWorker(GeventWorker):
    def init_process(self) -> None:
        # gunicorn's handle_error looks the writer up on its util module at call time; in
        # this worker process, that writer speaks JSON.
        util.write_error = write_json_error
        super().init_process()
