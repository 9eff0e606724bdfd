"""One logging setup for every process, so logs of API, workers and launcher look alike."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s"


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at each record, not the one it was made with: a
    handler bound to a stream that was since replaced and closed (a test's capture, a
    redirected stream) fails every record with "I/O operation on closed file"."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_oddasr", False) for h in root.handlers):
        handler = CurrentStderrHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._oddasr = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
