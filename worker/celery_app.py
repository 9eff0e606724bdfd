"""The workers' Celery app: the shared configuration plus the model-preloading hooks.

Prefork children load their engine in `worker_process_init` (after the fork: CUDA and
database connections do not survive one). The solo pool, used for GPUs, has no children,
so the main process loads it in `worker_init`.

Celery calls `worker_ready` as soon as the pool has started, while the children may still be
loading models for many seconds. The heartbeat therefore reports this worker as "loading"
until one of its processes has loaded its engine (a counter in memory shared across the
fork), and only then as serving its queues: routing and /readyz count only workers that can
start a job.

A node that serves only the webhooks queue (`oddasr webhook-worker`: a threads pool) loads
no engine and is ready at once; it sends deliveries and nothing else (the model workers run
the reconciler).

Metrics: the main process makes the node's metrics directory in `celeryd_init` (before the
pool forks; the task modules import prometheus_client only on first use, see
worker.services.metrics) and serves the whole node's metrics, its children's included, on
the node's own port (`--metrics-port`, else `worker_metrics_port`) once the pool is up.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
from pathlib import Path

import click
import redis
from celery.signals import celeryd_init, worker_init, worker_process_init, worker_ready, worker_shutdown

from shared.celery_factory import make_celery
from shared.config import QUEUE_WEBHOOKS, get_settings
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.host_spread import LocalStorageWatch
from shared.logs import configure_logging
from shared.metrics.process_group import end_process_group, serve_metrics_port, start_process_group
from shared.redis_connect import make_redis
from shared.redis_keys import WORKER_HEARTBEAT_INTERVAL_S
from shared.storage import Storage, make_storage
from shared.worker_presence import forget_worker, record_heartbeat

logger = logging.getLogger(__name__)

_settings = get_settings()
configure_logging(_settings.log_level)
app = make_celery(_settings, name="oddasr-worker")
app.conf.include = ["worker.tasks"]
app.user_options["worker"].add(click.Option(
    ["--metrics-port"], type=int, default=None,
    help="Serve this node's Prometheus metrics on this port (default: worker_metrics_port; 0: none)."))

#: Processes of this worker that have loaded their engine; created before the pool forks, so
#: the children's increments are seen by the main process's heartbeat.
_models_loaded = multiprocessing.Value("i", 0)
#: How often the heartbeat looks again while the models load, so readiness follows quickly.
LOADING_POLL_INTERVAL_S = 0.5


def _preload() -> None:
    from worker.services.runtime import init_process_runtime

    if _settings.preload_model:
        init_process_runtime(_settings)
        with _models_loaded.get_lock():
            _models_loaded.value += 1


def models_ready() -> bool:
    """True once a process of this worker can start a job without loading models first."""
    return not _settings.preload_model or _models_loaded.value > 0


@worker_process_init.connect
def _load_models_in_child(**_kwargs: object) -> None:
    _preload()


@worker_init.connect
def _load_models_in_solo_worker(sender: object = None, **_kwargs: object) -> None:
    pool_cls = getattr(sender, "pool_cls", None)
    pool_name = getattr(pool_cls, "__module__", "") + str(pool_cls)
    if "solo" in pool_name:
        _preload()


class _Heartbeat:
    """Tells the API which queues this worker serves, every few seconds, through Redis."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.node = ""
        self.queues: list[str] = []
        #: Jobs this node runs at once (its pool's concurrency), for the queues' estimates.
        self.processes = 1
        self.jobs: JobRepository | None = None
        self.storage: Storage | None = None
        self.client = make_redis(_settings, socket_connect_timeout=3, socket_timeout=5)
        #: False on a node that serves only webhooks: no engine to wait for, no reconciling.
        self.runs_jobs = True
        #: Warns when `storage_backend=local` while other hosts serve this deployment.
        self.storage_watch = LocalStorageWatch(_settings, "worker")

    def run(self) -> None:
        next_reap_s = time.monotonic() + _settings.reaper_interval_s
        while not self.stop.is_set():
            loaded = models_ready() or not self.runs_jobs
            try:
                record_heartbeat(self.client, self.node, self.queues, loaded=loaded, processes=self.processes)
            except redis.RedisError:
                logger.warning("could not record the worker heartbeat; Redis unreachable")
            if self.runs_jobs:
                with contextlib.suppress(redis.RedisError):
                    self.storage_watch.check(self.client, logger)
            if loaded and self.runs_jobs and time.monotonic() >= next_reap_s:
                next_reap_s = time.monotonic() + _settings.reaper_interval_s
                self._reap()
            interval_s = WORKER_HEARTBEAT_INTERVAL_S if loaded else LOADING_POLL_INTERVAL_S
            self.stop.wait(min(interval_s, _settings.reaper_interval_s))

    def _reap(self) -> None:
        from worker.services.reaper import ReconcileContext, reconcile

        try:
            if self.jobs is None:
                self.jobs = JobRepository(make_session_factory(make_engine(_settings.database_url, pooled=False)))
        except Exception:  # the reconciler must never take the worker down; it tries again later
            logger.warning("could not reach the job database to reconcile jobs", exc_info=True)
            return
        if self.storage is None:
            try:
                self.storage = make_storage(_settings)
            except Exception:  # storage away: the retention sweep waits for a later pass
                logger.warning("could not open storage for the retention sweep", exc_info=True)
        reconcile(ReconcileContext(settings=_settings, jobs=self.jobs, app=app, redis=self.client,
                                   storage=self.storage))


_heartbeat = _Heartbeat()


class _NodeMetrics:
    """This node's metrics group, set in the main process by `celeryd_init`."""

    directory: Path | None = None
    port: int = 0


@celeryd_init.connect
def _start_metrics_group(options: dict[str, object] | None = None, **_kwargs: object) -> None:
    port = (options or {}).get("metrics_port")
    _NodeMetrics.port = int(port) if isinstance(port, int) else _settings.worker_metrics_port
    _NodeMetrics.directory = start_process_group(_settings, "worker")


@worker_ready.connect
def _serve_metrics(sender: object = None, **_kwargs: object) -> None:
    # Once the pool is up: a child forked later inherits the listening socket but not the
    # thread that serves it, so only this process ever answers a scrape.
    serve_metrics_port(_settings.metrics_host, _NodeMetrics.port, str(getattr(sender, "hostname", "worker")))


@worker_ready.connect
def _start_heartbeat(sender: object = None, **_kwargs: object) -> None:
    consumer_queues = getattr(getattr(sender, "task_consumer", None), "queues", [])
    _heartbeat.node = str(getattr(sender, "hostname", "worker"))
    _heartbeat.queues = [queue.name for queue in consumer_queues]
    _heartbeat.runs_jobs = any(queue != QUEUE_WEBHOOKS for queue in _heartbeat.queues)
    _heartbeat.processes = _pool_processes(sender)
    threading.Thread(target=_heartbeat.run, name="oddasr-heartbeat", daemon=True).start()


def _pool_processes(consumer: object) -> int:
    """The node's parallel jobs: its concurrency (`worker_ready`'s sender is the consumer; the
    worker itself is its controller), except a solo pool: one, whatever it says."""
    controller = getattr(consumer, "controller", None)
    pool_cls = getattr(controller, "pool_cls", None)
    if "solo" in getattr(pool_cls, "__module__", "") + str(pool_cls):
        return 1
    try:
        return max(1, int(getattr(controller, "concurrency", 1) or 1))
    except (TypeError, ValueError):
        return 1


@worker_shutdown.connect
def _stop_heartbeat(**_kwargs: object) -> None:
    _heartbeat.stop.set()
    if _heartbeat.node:
        with contextlib.suppress(redis.RedisError):
            forget_worker(_heartbeat.client, _heartbeat.node, _heartbeat.queues)
    if _NodeMetrics.directory is not None:
        end_process_group(_NodeMetrics.directory)
