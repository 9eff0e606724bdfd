"""One metrics directory per process group, and the exporter that serves it.

prometheus_client picks its storage (in-memory, or one mmap file per process) when it is
first imported, from the PROMETHEUS_MULTIPROC_DIR variable. So the first process of a group
calls `start_process_group` before it makes any metric of its own; every child it forks or
starts afterwards inherits the variable and writes its own file. Where prometheus_client was
imported already (the `celery` command loads Flower's command plugin, which imports it and
makes Flower's own, unexported metrics), its value class is chosen again, so every metric
made from then on is shared. prometheus_client is imported inside these functions, never at
module level, and the projects' metrics are made on first use.

The directory is named after the host and the group's first pid: several groups can share
one `metrics_dir` (the one-machine launcher, containers on a shared volume) without mixing
their numbers, and a group that died without cleaning up is swept by the next group that
starts on the same host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.config import Settings, export_metrics_multiproc_dir, metrics_multiproc_dir

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

logger = logging.getLogger(__name__)


def _group_dir_name(kind: str, pid: int) -> str:
    return f"{kind}-{socket.gethostname()}-{pid}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_dead_groups(root: Path) -> None:
    """Remove the directories of groups on this host whose first process is gone (a crash or
    a SIGKILL skipped their own cleanup)."""
    suffix = f"-{socket.gethostname()}-"
    for directory in root.iterdir():
        head, found, pid_text = directory.name.rpartition(suffix)
        if not found or not head or not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        if not _pid_alive(int(pid_text)):
            shutil.rmtree(directory, ignore_errors=True)


def start_process_group(settings: Settings, kind: str) -> Path:
    """Make this process the first of a metrics group: an empty directory of its own, named
    in the environment for itself and every child. Call it before this process makes any
    metric: one made earlier stays in this process's memory, outside the group's numbers."""
    root = Path(settings.metrics_dir or Path(settings.data_dir) / "metrics")
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        _sweep_dead_groups(root)
    directory = root / _group_dir_name(kind, os.getpid())
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    export_metrics_multiproc_dir(directory)
    if "prometheus_client" in sys.modules:  # imported already: from now on, metrics are shared
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
    return directory


def end_process_group(directory: Path) -> None:
    """The group stopped: its numbers end with it (Prometheus sees the restart as a reset)."""
    shutil.rmtree(directory, ignore_errors=True)


def mark_process_dead(pid: int) -> None:
    """Drop a dead child's live gauges (its counters and histograms stay in the sums)."""
    directory = metrics_multiproc_dir()
    if directory is None:
        return
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid, str(directory))


class _DefaultRegistry:
    """The in-memory registry, for a process that runs outside any group (tests, a
    gunicorn started by hand)."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client import REGISTRY

        yield from REGISTRY.collect()


def scrape_registry(extra_collectors: Iterable[Any] = ()) -> CollectorRegistry:
    """A registry that gathers the whole group's metrics (or this process's, outside a
    group), plus `extra_collectors` computed at scrape time."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry(auto_describe=False)
    directory = metrics_multiproc_dir()
    if directory is not None:
        multiprocess.MultiProcessCollector(registry, path=str(directory))
    else:
        registry.register(_DefaultRegistry())  # type: ignore[arg-type]
    for collector in extra_collectors:
        registry.register(collector)
    return registry


def serve_metrics_port(host: str, port: int, what: str) -> bool:
    """Serve the group's metrics on `host:port` from a background thread; 0: do not.

    A port that cannot be bound is logged and skipped: a worker without metrics still does
    its jobs, which matters more than its numbers."""
    if not port:
        return False
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host, registry=scrape_registry())
    except OSError as exc:
        logger.error("%s: could not serve metrics on %s:%d (%s); running without a metrics port", what, host, port,
                     exc)
        return False
    logger.info("%s: metrics on http://%s:%d/metrics", what, host, port)
    return True
