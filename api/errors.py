"""Translate errors into `{"error": "..."}` JSON with the right status, at one boundary.

The OpenAI-compatible routes answer in OpenAI's own shape instead (`api/openai_errors.py`):
OpenAI's SDKs read `error.message` and show nothing of a flat string.
"""

from __future__ import annotations

import logging
import math

from flask import Flask, has_request_context, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from api.body_limits import too_large_message
from api.openai_errors import is_openai_path, openai_error_body
from api.response_models.errors import Error, OpenAIError
from shared.errors import OddAsrError

logger = logging.getLogger(__name__)


def error_response(message: str, status: int, *, param: str | None = None,
                   job_id: str | None = None):  # type: ignore[no-untyped-def]
    """`{"error": message}` (and the job's id where one exists); on an OpenAI route, OpenAI's
    `{"error": {"message", "type", "param", "code"}}` with the job's id beside it."""
    job = {"job_id": job_id} if job_id is not None else {}
    if has_request_context() and is_openai_path(request.path):
        response = jsonify(OpenAIError(error=openai_error_body(message, status, param), **job).public())
    else:
        response = jsonify(Error(error=message, **job).public())
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(OddAsrError)
    def _oddasr_error(exc: OddAsrError):  # type: ignore[no-untyped-def]
        if exc.http_status >= 500:
            logger.warning("request failed: %s", exc.message, exc_info=exc.__cause__ is not None)
        response = error_response(exc.message, exc.http_status, param=exc.param)
        if exc.retry_after_s is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        if exc.http_status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="oddasr"'
        return response

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError):  # type: ignore[no-untyped-def]
        logger.warning("database unavailable: %s", exc.orig)
        return error_response("the job database is unavailable; try again shortly", 503)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: RequestEntityTooLarge):  # type: ignore[no-untyped-def]
        return error_response(too_large_message(), 413)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        response = error_response(exc.description or exc.name, exc.code or 500)
        # Keep the exception's own headers: a 405 must name the allowed methods (RFC 9110).
        for name, value in exc.get_headers():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        logger.error("unhandled error", exc_info=exc)
        return error_response(f"internal error: {type(exc).__name__}", 500)
