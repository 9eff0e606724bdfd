"""gunicorn server hooks of the API (`--config python:api.gunicorn_hooks`): metrics across
the worker processes.

The master makes the group's metrics directory before it forks any worker, so every worker
writes its numbers there and any of them can answer /metrics for all (prometheus_client's
multiprocess mode). A worker that exits has its live gauges (open websockets) dropped; its
counters stay in the sums.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.config import get_settings
from shared.metrics.process_group import end_process_group, mark_process_dead, start_process_group

_group: dict[str, Path] = {}


def on_starting(server: Any) -> None:
    _group["dir"] = start_process_group(get_settings(), "api")


def child_exit(server: Any, worker: Any) -> None:
    mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if "dir" in _group:
        end_process_group(_group["dir"])
