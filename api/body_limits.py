"""How much request body each route reads, chunked or not (issue 17).

Werkzeug enforces `request.max_content_length` while it reads: a declared Content-Length over
it is refused before a byte is read, and a chunked body (gunicorn marks its input as
terminated) is read through a `LimitedStream` that stops at the limit. That stream, though,
hands back the first `limit` bytes of a longer body from `read()` / `get_data()` as if they
were all of it (a hotword set cut in the middle of a word, or a 400 for JSON that "ends"
early); `StrictLimitedStream` looks one byte further and answers 413 instead.

The app-wide limit (`MAX_CONTENT_LENGTH`) is the small `max_request_body_bytes`, and a route
that needs another declares it with a decorator, which runs before anything touches the body:

- `@upload_body`: the routes that take an audio upload (`max_upload_bytes` plus room for the
  multipart headers and form fields; the upload itself streams to a temp file, never memory);
- `@body_limit(n)`: a route with a smaller limit of its own (a hotword set).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_content_length, get_input_stream

from api.uploads import MULTIPART_OVERHEAD_BYTES, SpoolToDiskRequest

View = TypeVar("View", bound=Callable[..., Any])

_UPLOAD_FLAG = "oddasr_upload_route"


class StrictLimitedStream(LimitedStream):
    """A body read up to a maximum that refuses (413) a body going past it, instead of
    returning its first `limit` bytes as the whole."""

    def on_exhausted(self) -> None:
        # At the limit: the body is too large only if another byte follows (one byte, so
        # this reads at most the limit plus one).
        if self._stream.read(1):
            raise RequestEntityTooLarge()

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted:
            self.on_exhausted()
        return data


class LimitedBodyRequest(SpoolToDiskRequest):
    """The API's request: uploads spool to disk, and every body stops at the route's limit."""

    @cached_property
    def stream(self) -> Any:  # type: ignore[override]
        limit_bytes = self.max_content_length
        if limit_bytes is None or "wsgi.input_terminated" not in self.environ:
            return get_input_stream(self.environ, max_content_length=limit_bytes)
        declared_bytes = get_content_length(self.environ)
        if declared_bytes is not None and declared_bytes > limit_bytes:
            raise RequestEntityTooLarge()  # refused before a byte is read
        if declared_bytes is not None:
            return LimitedStream(self.environ["wsgi.input"], declared_bytes)
        return StrictLimitedStream(self.environ["wsgi.input"], limit_bytes, is_max=True)


def upload_body(view: View) -> View:
    """This route takes an audio upload: its body may reach `max_upload_bytes` (+ multipart overhead)."""
    @functools.wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        request.max_content_length = current_app.config["ODDASR_MAX_UPLOAD_BYTES"] + MULTIPART_OVERHEAD_BYTES
        g.setdefault(_UPLOAD_FLAG, True)
        return view(*args, **kwargs)

    return limited  # type: ignore[return-value]


def body_limit(limit_bytes: int) -> Callable[[View], View]:
    """This route reads at most `limit_bytes` of body."""
    def decorate(view: View) -> View:
        @functools.wraps(view)
        def limited(*args: Any, **kwargs: Any) -> Any:
            request.max_content_length = limit_bytes
            return view(*args, **kwargs)

        return limited  # type: ignore[return-value]

    return decorate


def too_large_message() -> str:
    """What a 413 says: the limit the client ran into, in bytes."""
    if g.get(_UPLOAD_FLAG):
        return f"the upload is larger than the limit of {current_app.config['ODDASR_MAX_UPLOAD_BYTES']} bytes"
    return (f"the request body is larger than this endpoint's limit of {request.max_content_length} bytes"
            " (chunked or not)")
