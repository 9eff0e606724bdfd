"""Run CPU-bound or blocking-C work off the gevent loop.

Greenlets share one thread: while one of them decodes audio in C (probing a FLAC that
states no length decodes it), no other request is served, /healthz included. gevent's
thread pool runs such calls in a real thread and lets the loop go on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def off_loop(function: Callable[..., T], *args: object) -> T:
    """`function(*args)`, in gevent's thread pool when this process runs gevent, else inline."""
    try:
        from gevent import get_hub
        from gevent.monkey import is_module_patched
    except ImportError:  # pragma: no cover - gevent is a dependency of the API
        return function(*args)
    if not is_module_patched("threading"):
        return function(*args)
    return get_hub().threadpool.apply(function, args)
