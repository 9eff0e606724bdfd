"""`GET /metrics`: the API group's metrics, plus the backlog read at scrape time.

Public like /healthz unless `metrics_require_key` is set (api.auth lets it through); then it
needs an admin key. Queue depths come from Redis and the job database when Prometheus asks,
computed by the one process that answers the scrape, so they are never summed twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import redis
from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.exc import SQLAlchemyError

from api.auth import METRICS_PATH, require_admin
from api.deps import ApiDeps, deps
from shared import redis_keys
from shared.config import QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE
from shared.metrics.process_group import scrape_registry
from shared.stream_slots import summarize_slots

logger = logging.getLogger(__name__)

QUEUES = (QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE)

blueprint = Blueprint("metrics", __name__)


class BacklogCollector:
    """Gauges read at scrape time; a dependency that is down leaves its gauge out (the scrape
    itself still answers, with the request metrics)."""

    def __init__(self, api: ApiDeps) -> None:
        self.api = api

    def collect(self) -> Iterator[Any]:
        yield from self._broker_queues()
        yield from self._queued_jobs()
        yield from self._stream_slots()

    def _broker_queues(self) -> Iterator[Any]:
        family = GaugeMetricFamily("oddasr_queue_messages",
                                   "Messages waiting in a Celery queue in Redis, not yet taken by any worker.",
                                   labels=["queue"])
        try:
            pipe = self.api.redis.pipeline(transaction=False)
            for queue in QUEUES:
                for key in redis_keys.celery_queue_lists(queue):
                    pipe.llen(key)
            lengths = pipe.execute()
        except redis.RedisError as exc:
            logger.warning("metrics: could not read the queue lengths from Redis: %s", exc)
            return
        per_queue = len(lengths) // len(QUEUES)
        for index, queue in enumerate(QUEUES):
            family.add_metric([queue], float(sum(lengths[index * per_queue:(index + 1) * per_queue])))
        yield family

    def _queued_jobs(self) -> Iterator[Any]:
        family = GaugeMetricFamily("oddasr_jobs_queued",
                                   "Jobs waiting for a worker, per queue, as the job database says (the backlog).",
                                   labels=["queue"])
        try:
            counts = self.api.jobs.count_queued_by_queue()
        except SQLAlchemyError as exc:
            logger.warning("metrics: could not count the queued jobs: %s", exc)
            return
        for queue in sorted({*QUEUES, *counts}):
            family.add_metric([queue], float(counts.get(queue, 0)))
        yield family

    def _stream_slots(self) -> Iterator[Any]:
        try:
            summary = summarize_slots(self.api.redis)
        except redis.RedisError as exc:
            logger.warning("metrics: could not read the stream worker slots: %s", exc)
            return
        family = GaugeMetricFamily("oddasr_stream_slots", "Live stream worker processes, by state.",
                                   labels=["state"])
        family.add_metric(["idle"], float(summary.idle))
        family.add_metric(["claimed"], float(summary.live - summary.idle))
        yield family


@blueprint.get(METRICS_PATH)
def metrics() -> Response:
    api = deps()
    if api.settings.metrics_require_key:
        require_admin()
    registry = scrape_registry([BacklogCollector(api)])
    return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
