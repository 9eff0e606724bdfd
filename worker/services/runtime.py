"""What one worker process holds for its whole life: settings, clients and a loaded engine.

Built once per process in Celery's process-init hook (after the fork, so no database
connection or CUDA context is shared with the parent), never inside a job.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field

import redis

from shared import redis_keys
from shared.config import Settings
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.redis_connect import make_redis
from shared.sensitive_words import SensitiveWords
from shared.storage import Storage, make_storage
from worker.engines.base import Engine
from worker.engines.registry import load_engine
from worker.services.metrics import record_model_load

logger = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    settings: Settings
    jobs: JobRepository
    storage: Storage
    redis: redis.Redis
    engine: Engine
    #: "hostname:pid", written on each job this process runs.
    identity: str
    #: Masked in every transcript this process stores or sends.
    sensitive_words: SensitiveWords = field(default_factory=lambda: SensitiveWords(()))


_current: WorkerRuntime | None = None


def process_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def build_runtime(settings: Settings) -> WorkerRuntime:
    """Connect the clients and load the engine; the expensive part is the model load."""
    identity = process_identity()
    started_s = time.monotonic()
    engine = load_engine(settings)
    load_s = time.monotonic() - started_s
    record_model_load(engine.name, load_s)
    client = make_redis(settings, socket_connect_timeout=5, socket_timeout=10)
    try:
        client.hincrby(redis_keys.MODEL_LOADS_HASH, identity, 1)
    except redis.RedisError:
        logger.warning("could not record the model load in Redis", exc_info=True)
    logger.info("worker %s loaded engine %s (%s) in %.2f s", identity, engine.name, engine.model_name, load_s)
    if settings.preload_speaker_model and hasattr(engine, "start_loading_speaker_model"):
        engine.start_loading_speaker_model()
    # Read before any job: a configured list that cannot be read stops the worker, loudly.
    sensitive_words = SensitiveWords.from_file(settings.sensitive_words_path, settings.sensitive_words_mask)
    session_factory = make_session_factory(make_engine(settings.database_url))
    return WorkerRuntime(
        settings=settings,
        jobs=JobRepository(session_factory),
        storage=make_storage(settings),
        redis=client,
        engine=engine,
        identity=identity,
        sensitive_words=sensitive_words,
    )


def init_process_runtime(settings: Settings) -> WorkerRuntime:
    global _current
    _current = build_runtime(settings)
    return _current


def current_runtime(settings: Settings) -> WorkerRuntime:
    """The process's runtime; loads it on first use when preloading was turned off."""
    if _current is None:
        logger.warning("engine was not preloaded; loading it inside the first job")
        return init_process_runtime(settings)
    return _current
