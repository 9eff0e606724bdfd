"""Reusable parts of the document: the schemas, generated from the models that build the
answers (those the table names, and those named by reference) and validate the request
bodies; the answers of the key check; headers; security schemes."""

from __future__ import annotations

from typing import Any

from api.openapi.operations import error, models_of
from api.openapi.paths import API_KEY_SCHEME, BEARER_SCHEME, TABLE
from api.openapi.request_schemas import component_schemas
from api.openapi.response_schemas import response_components
from api.request_models.bodies import HotwordSetBody, NewApiKey
from api.response_models import errors
from shared import render_models
from shared.transcript import Transcript

Schema = dict[str, Any]

SCHEMAS: dict[str, Schema] = {
    **response_components(errors.Error, errors.JobError, errors.OpenAIError, Transcript, render_models.Text,
                          render_models.VerboseTranscription, *models_of(TABLE)),
    **component_schemas(NewApiKey, HotwordSetBody),
}

#: Answered by the key check that runs before every route that may take a key.
AUTH_ANSWERS: dict[str, Schema] = {
    "401": {**error("No API key, or one this server does not know (or revoked). Only with auth required."),
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
    "429": error("Over a limit: the key's requests per minute (or, on submissions, its jobs in flight or"
                 " audio seconds per day, or this address's uploads at once). The message names the limit.",
                 retry_after=True),
    "503": error("A dependency (database, Redis, storage) is unavailable; try again shortly.", retry_after=True),
}

HEADERS: dict[str, Schema] = {
    "RetryAfter": {"description": "Seconds to wait before trying again.",
                   "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "JobId": {"description": "The id of the job that did the work: GET /v1/jobs/{id} shows its timings.",
              "schema": {"type": "string"}},
    "Location": {"description": "Where to read what was made (a new job: its URL, to poll).",
                 "schema": {"type": "string"}},
}

SECURITY_SCHEMES: dict[str, Schema] = {
    BEARER_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "oddasr_sk_...",
                    "description": "`Authorization: Bearer <key>`, what the OpenAI SDKs send."},
    API_KEY_SCHEME: {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "The same key in an `X-API-Key` header."},
}
