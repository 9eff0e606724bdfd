"""Liveness and readiness for orchestrators and operators."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text

from api.deps import deps
from shared.config import QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE, Settings
from shared.stream_slots import summarize_slots
from shared.worker_presence import live_workers, loading_workers

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


def _presence_by_queue() -> dict[str, dict[str, list[str]]]:
    """Per queue, the workers serving it and those still loading their models, from the
    heartbeats they keep in Redis (fast calls, no broadcast)."""
    client = deps().redis
    return {queue: {"workers": live_workers(client, queue), "loading": loading_workers(client, queue)}
            for queue in (QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE)}


def _required_queues(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Queues that need a worker with its models loaded: queue -> the queues that can serve
    its jobs (file jobs of a GPU deployment fall back to cpu when allowed)."""
    file_queues: tuple[str, ...] = (settings.file_queue,)
    if settings.enable_gpu and settings.gpu_fallback_to_cpu:
        file_queues = (QUEUE_GPU, QUEUE_CPU)
    required = {settings.file_queue: file_queues}
    if settings.sentence_worker_concurrency > 0:
        required[QUEUE_SENTENCE] = (QUEUE_SENTENCE,)
    return required


def _waiting_for(settings: Settings, presence: dict[str, dict[str, list[str]]]) -> dict[str, str]:
    """Each required queue no loaded worker serves yet, with the reason in words."""
    waiting: dict[str, str] = {}
    for queue, servers in _required_queues(settings).items():
        if any(presence.get(q, {}).get("workers") for q in servers):
            continue
        loading = sorted({w for q in servers for w in presence.get(q, {}).get("loading", [])})
        if loading:
            waiting[queue] = f"worker(s) still loading their models: {', '.join(loading)}"
        else:
            waiting[queue] = "no worker serves this queue"
    return waiting


@blueprint.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    """Ready: the dependencies answer and a worker of each configured queue has its models
    loaded, so a job submitted now can start. Otherwise 503, saying what is missing."""
    d = deps()

    def database() -> None:
        with d.jobs._session_factory() as session:  # noqa: SLF001 - a health probe, read-only
            session.execute(text("SELECT 1"))

    checks = {
        "redis": _check("redis", d.redis.ping),
        "database": _check("database", database),
        "storage": _check("storage", d.storage.ping),
    }
    presence: dict[str, dict[str, list[str]]] = {}
    if checks["redis"][0]:
        ok, detail = _check("workers", lambda: presence.update(_presence_by_queue()))
        if not ok:
            checks["workers"] = (ok, detail)
    waiting_for = _waiting_for(d.settings, presence)
    streams: dict[str, int] = {}
    if checks["redis"][0] and not d.settings.disable_stream:
        ok, detail = _check("stream workers", lambda: streams.update(vars(summarize_slots(d.redis))))
        if not ok:
            checks["stream_workers"] = (ok, detail)
        elif d.settings.stream_workers > 0 and not streams.get("live"):
            # A stream worker offers its slot only once its model is loaded.
            waiting_for["stream"] = "no stream worker has loaded its model yet"
    ready = all(ok for ok, _ in checks.values()) and not waiting_for
    file_queue = d.settings.file_queue
    body = {
        "ready": ready,
        "checks": {name: detail for name, (_ok, detail) in checks.items()},
        "waiting_for": waiting_for,
        "queues": presence,
        "file_queue": file_queue,
        "file_queue_served": bool(presence.get(file_queue, {}).get("workers")),
        "sentence_queue_served": bool(presence.get(QUEUE_SENTENCE, {}).get("workers")),
        "stream_workers": streams,
    }
    response = jsonify(body)
    response.status_code = 200 if ready else 503
    return response
