"""The Flask app factory: builds the clients once and registers the blueprints."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask

from api.auth import register_auth
from api.body_limits import LimitedBodyRequest
from api.deps import EXTENSION_KEY, ApiDeps
from api.errors import register_error_handlers
from api.host_guard import HostGuard
from api.key_limits import KeyLimiter
from api.request_metrics import register_request_metrics
from api.routes import docs, health, hotwords, jobs, keys, legacy, openai, queues, speakers, webhooks
from api.streaming.routes import register_streaming
from api.upload_guard import UploadGuard
from api.web import routes as web
from api.websocket_ports import WebsocketPortGuard
from shared.auth.api_key_tokens import resolve_hash_key
from shared.auth.exposure import api_exposure_problem
from shared.celery_factory import make_celery
from shared.config import Settings, get_settings
from shared.db.api_keys import ApiKeyRepository
from shared.db.hotword_sets import HotwordSetRepository
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.errors import OddAsrError
from shared.hotwords import HotwordEntry, parse_hotword_lines
from shared.redis_connect import limits_storage_uri, make_redis
from shared.storage import make_storage

logger = logging.getLogger(__name__)


def load_default_hotwords(settings: Settings) -> list[HotwordEntry]:
    """The original's hotword file; one that cannot be read stops the API at start."""
    if settings.hotwords_path is None:
        return []
    try:
        return parse_hotword_lines(Path(settings.hotwords_path).read_text(encoding="utf-8"))
    except (OSError, OddAsrError) as exc:
        raise RuntimeError(f"cannot use the hotword file {settings.hotwords_path}: {exc}") from exc


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    if problem := api_exposure_problem(settings):  # also when gunicorn is started by hand
        raise RuntimeError(problem)
    app = Flask("oddasr")
    app.request_class = LimitedBodyRequest
    upload_tmp_dir = Path(settings.data_dir) / "uploads"
    upload_tmp_dir.mkdir(parents=True, exist_ok=True)
    app.config.update(
        # Werkzeug stops reading a body past this while it streams, chunked or not, and answers
        # 413; upload routes raise it for themselves (api.body_limits).
        MAX_CONTENT_LENGTH=settings.max_request_body_bytes,
        MAX_FORM_MEMORY_SIZE=1024 * 1024,
        ODDASR_MAX_UPLOAD_BYTES=settings.max_upload_bytes,
        ODDASR_UPLOAD_TMP_DIR=str(upload_tmp_dir),
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Chinese text stays readable
    session_factory = make_session_factory(make_engine(settings.database_url))
    job_repository = JobRepository(session_factory)
    redis_client = make_redis(settings, socket_connect_timeout=3, socket_timeout=10,
                                        health_check_interval=30)
    app.extensions[EXTENSION_KEY] = ApiDeps(
        settings=settings,
        jobs=job_repository,
        storage=make_storage(settings),
        redis=redis_client,
        celery=make_celery(settings, name="oddasr-api"),
        api_keys=ApiKeyRepository(session_factory, resolve_hash_key(settings.api_key_hash_secret, settings.data_dir)),
        limiter=KeyLimiter(limits_storage_uri(settings), redis_client, job_repository.count_in_flight,
                           job_repository.count_live_sessions),
        hotword_sets=HotwordSetRepository(session_factory),
        default_hotwords=load_default_hotwords(settings),
    )
    register_error_handlers(app)
    register_auth(app)
    for blueprint in (docs.blueprint, health.blueprint, hotwords.blueprint, jobs.blueprint, keys.blueprint,
                      legacy.blueprint, openai.blueprint, queues.blueprint, speakers.blueprint, webhooks.blueprint,
                      web.blueprint):
        app.register_blueprint(blueprint)
    register_streaming(app, settings)
    app.wsgi_app = UploadGuard(app.wsgi_app, settings)  # type: ignore[method-assign]
    app.wsgi_app = WebsocketPortGuard(app.wsgi_app, settings)  # type: ignore[method-assign]
    app.wsgi_app = HostGuard(app.wsgi_app, settings)  # type: ignore[method-assign]  # before any other answer
    register_request_metrics(app)  # last: it times everything above, the upload guard included
    return app
