"""Metrics (Prometheus): where each process group keeps its files, and the metrics ports."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel


class MetricsSettings(BaseModel):
    """prometheus_client's multiprocess directory, `/metrics` access, the workers' ports."""

    #: Where prometheus_client's multiprocess mode keeps one small file per process; each
    #: process group (an API's gunicorn, a Celery node, the stream supervisor) gets its own
    #: subdirectory, emptied when the group starts. Empty: `data_dir/metrics`.
    metrics_dir: Path | None = None
    #: `/metrics` on the API answers anyone (like /healthz) unless this is true: then it needs
    #: an admin key when `auth_mode=required` (Prometheus sends it as a bearer token).
    metrics_require_key: bool = False
    #: Address of the workers' own metrics ports (0.0.0.0 in containers, so Prometheus reaches them).
    metrics_host: str = "127.0.0.1"
    #: A Celery worker node's metrics port (`oddasr worker --metrics-port` overrides it for one
    #: node; `oddasr run` gives its second node the next port). 0: no metrics port.
    worker_metrics_port: int = 9102
    #: The stream worker supervisor's metrics port (all its children's metrics). 0: none.
    stream_worker_metrics_port: int = 9104
    #: The webhooks node's metrics port (its deliveries' outcomes). 0: none.
    webhook_worker_metrics_port: int = 9105
