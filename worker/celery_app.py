"""The workers' Celery app: the shared configuration plus the model-preloading hooks.

Prefork children load their engine in `worker_process_init` (after the fork: CUDA and
database connections do not survive one). The solo pool, used for GPUs, has no children,
so the main process loads it in `worker_init`.
"""

from __future__ import annotations

import logging

from celery.signals import worker_init, worker_process_init

from shared.celery_factory import make_celery
from shared.config import get_settings
from shared.logs import configure_logging

logger = logging.getLogger(__name__)

_settings = get_settings()
configure_logging(_settings.log_level)
app = make_celery(_settings, name="oddasr-worker")
app.conf.include = ["worker.tasks"]


def _preload() -> None:
    from worker.services.runtime import init_process_runtime

    if _settings.preload_model:
        init_process_runtime(_settings)


@worker_process_init.connect
def _load_models_in_child(**_kwargs: object) -> None:
    _preload()


@worker_init.connect
def _load_models_in_solo_worker(sender: object = None, **_kwargs: object) -> None:
    pool_cls = getattr(sender, "pool_cls", None)
    pool_name = getattr(pool_cls, "__module__", "") + str(pool_cls)
    if "solo" in pool_name:
        _preload()
