"""Liveness and readiness for orchestrators and operators."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text

from api.deps import deps
from shared.config import QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE
from shared.worker_presence import live_workers

logger = logging.getLogger(__name__)

blueprint = Blueprint("health", __name__)



@blueprint.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify({"status": "ok"})


def _check(name: str, probe) -> tuple[bool, str]:  # type: ignore[no-untyped-def]
    try:
        probe()
    except Exception as exc:  # every failure of a dependency is a "not ready", with its reason
        logger.warning("readiness check %s failed: %s", name, exc)
        return False, f"{type(exc).__name__}: {exc}"
    return True, "ok"


def _workers_by_queue() -> dict[str, list[str]]:
    """Live workers per queue, from the heartbeats they keep in Redis (one fast call each)."""
    client = deps().redis
    return {queue: live_workers(client, queue) for queue in (QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE)}


@blueprint.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    d = deps()

    def database() -> None:
        with d.jobs._session_factory() as session:  # noqa: SLF001 - a health probe, read-only
            session.execute(text("SELECT 1"))

    checks = {
        "redis": _check("redis", d.redis.ping),
        "database": _check("database", database),
        "storage": _check("storage", d.storage.ping),
    }
    ready = all(ok for ok, _ in checks.values())
    workers: dict[str, list[str]] = {}
    if checks["redis"][0]:
        ok, detail = _check("workers", lambda: workers.update(_workers_by_queue()))
        if not ok:
            checks["workers"] = (ok, detail)
    file_queue = d.settings.file_queue
    body = {
        "ready": ready,
        "checks": {name: detail for name, (_ok, detail) in checks.items()},
        "queues": {queue: {"workers": names} for queue, names in workers.items()},
        "file_queue": file_queue,
        "file_queue_served": bool(workers.get(file_queue)),
        "sentence_queue_served": bool(workers.get(QUEUE_SENTENCE)),
    }
    response = jsonify(body)
    response.status_code = 200 if ready else 503
    return response
