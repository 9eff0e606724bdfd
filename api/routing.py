"""Which queue a job goes to.

Sentence jobs take the low-latency `sentence` lane. File jobs go to `gpu` when GPU workers
are configured (`enable_gpu`) and one is alive; with none alive they fall back to `cpu` when
`gpu_fallback_to_cpu` allows, else they wait on `gpu` for one to come back.
"""

from __future__ import annotations

import logging

import redis

from shared.config import QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE, Settings
from shared.worker_presence import live_workers

logger = logging.getLogger(__name__)


def choose_queue(settings: Settings, mode: str, client: redis.Redis) -> str:
    if mode == "sentence":
        return QUEUE_SENTENCE
    if not settings.enable_gpu:
        return QUEUE_CPU
    if not settings.gpu_fallback_to_cpu:
        return QUEUE_GPU
    try:
        if live_workers(client, QUEUE_GPU):
            return QUEUE_GPU
    except redis.RedisError:
        return QUEUE_GPU  # the enqueue that follows reports Redis being down
    logger.info("no live GPU worker; routing the file job to the cpu queue")
    return QUEUE_CPU
