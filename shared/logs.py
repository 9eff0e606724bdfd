"""One logging setup for every process, so logs of API, workers and launcher look alike."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s"


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to the stderr it was made with, or, once that stream is closed, to whatever
    `sys.stderr` is then. Bound for good, a handler whose stream was replaced and closed (a
    test's capture) failed every later record; following `sys.stderr` always would write into
    Celery's logging proxy, which drops a worker's own records."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self._made_with: TextIO = sys.stderr

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr if getattr(self._made_with, "closed", False) else self._made_with

    @stream.setter
    def stream(self, value: TextIO) -> None:
        self._made_with = value


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_oddasr", False) for h in root.handlers):
        handler = CurrentStderrHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._oddasr = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
