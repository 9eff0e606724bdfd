"""prometheus_client's multiprocess directory, passed to child processes through the environment.

The one environment variable this project reads and writes without the ODDASR_ prefix: it is
prometheus_client's own, read by that library in every process that imports it."""

from __future__ import annotations

import os
from pathlib import Path

#: prometheus_client's own variable (no ODDASR_ prefix): the directory of its multiprocess
#: mode, set by the first process of each group (see shared.metrics.process_group).
PROMETHEUS_MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def export_metrics_multiproc_dir(path: Path) -> None:
    """Point prometheus_client (in this process and every child it starts or forks) at `path`."""
    os.environ[PROMETHEUS_MULTIPROC_DIR_ENV] = str(path)


def metrics_multiproc_dir() -> Path | None:
    """The multiprocess directory this process writes its metrics to, or None (in-memory)."""
    value = os.environ.get(PROMETHEUS_MULTIPROC_DIR_ENV, "")
    return Path(value) if value else None

