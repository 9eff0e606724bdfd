"""Liveness and readiness for orchestrators and operators.

`/readyz` is public, so its public answer says what is ready and what is not, never why in
detail: exception text (database URLs, S3 endpoints, Redis addresses) and worker host names go
to admin keys only (and to everyone with `auth_mode=off`, where every caller is admin).
"""

from __future__ import annotations

import contextlib
import logging

import redis
from flask import Blueprint, jsonify
from sqlalchemy import text

from api.auth import optional_principal
from api.deps import deps
from api.response_models.service import Health, Readiness
from shared.config import QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE, Settings
from shared.host_spread import local_storage_warning, other_hosts, record_api_host
from shared.stream_slots import summarize_slots
from shared.worker_presence import live_workers, loading_workers

logger = logging.getLogger(__name__)

blueprint = Blueprint("health", __name__)

#: What a public /readyz says of a failed check (the reason goes to the log and to admin keys).
FAILED_CHECK = "failed"
DETAILS_NOTE = "errors and worker names are shown to admin keys"

@blueprint.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify(Health(status="ok").public())


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


def _waiting_for(settings: Settings, presence: dict[str, dict[str, list[str]]], *,
                 with_names: bool) -> dict[str, str]:
    """Each required queue no loaded worker serves yet, with the reason in words (naming the
    loading workers `with_names`)."""
    waiting: dict[str, str] = {}
    for queue, servers in _required_queues(settings).items():
        if any(presence.get(q, {}).get("workers") for q in servers):
            continue
        loading = sorted({w for q in servers for w in presence.get(q, {}).get("loading", [])})
        if loading:
            waiting[queue] = "worker(s) still loading their models" + (f": {', '.join(loading)}" if with_names else "")
        else:
            waiting[queue] = "no worker serves this queue"
    return waiting


@blueprint.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    """Ready: the dependencies answer and a worker of each configured queue has its models
    loaded, so a job submitted now can start. Otherwise 503, saying what is missing."""
    d = deps()
    principal = optional_principal()
    detailed = principal is not None and principal.is_admin

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
    waiting_for = _waiting_for(d.settings, presence, with_names=detailed)
    streams: dict[str, int] = {}
    if checks["redis"][0] and not d.settings.disable_stream:
        ok, detail = _check("stream workers", lambda: streams.update(vars(summarize_slots(d.redis))))
        if not ok:
            checks["stream_workers"] = (ok, detail)
        elif d.settings.stream_workers > 0 and not streams.get("live"):
            # A stream worker offers its slot only once its model is loaded.
            waiting_for["stream"] = "no stream worker has loaded its model yet"
    warnings: dict[str, str] = {}
    if checks["redis"][0]:
        with contextlib.suppress(redis.RedisError):
            record_api_host(d.redis)
            warning = local_storage_warning(d.settings, other_hosts(d.redis) if d.settings.storage_backend == "local"
                                            else {}, with_names=detailed)
            if warning:
                warnings["storage"] = warning
    ready = all(ok for ok, _ in checks.values()) and not waiting_for
    file_queue = d.settings.file_queue
    body = Readiness(
        ready=ready,
        checks={name: detail if ok or detailed else FAILED_CHECK for name, (ok, detail) in checks.items()},
        waiting_for=waiting_for,
        # Without an admin key: how many workers, not which.
        queues=presence if detailed else {queue: {kind: len(names) for kind, names in info.items()}
                                          for queue, info in presence.items()},
        file_queue=file_queue,
        file_queue_served=bool(presence.get(file_queue, {}).get("workers")),
        sentence_queue_served=bool(presence.get(QUEUE_SENTENCE, {}).get("workers")),
        stream_workers=streams,
        warnings=warnings,
    )
    if not detailed:
        body.details = DETAILS_NOTE
    response = jsonify(body.public())
    response.status_code = 200 if ready else 503
    return response
