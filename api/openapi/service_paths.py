"""The rest of the document: OddASR's and OpenAI's synchronous endpoints, keys, queues,
probes and the contract itself."""

from __future__ import annotations

from typing import Any

from api.openapi.components import API_KEY_SCHEME, BEARER_SCHEME, JOB_ID_HEADER, error, json_body, ref
from api.openapi.job_paths import MASKING_REFUSAL, UPLOAD_ERRORS, job_form
from api.openapi.operations import ok_json, operation
from api.openapi.request_schemas import binary, multipart_body
from api.request_models.job_form import AUDIO_DESCRIPTION
from api.request_models.openai_form import TranscriptionForm

Schema = dict[str, Any]

#: The answers of an endpoint that waits for its job.
SYNC_ERRORS: dict[str, Schema] = {
    **UPLOAD_ERRORS,
    "409": error("The job was canceled while the request waited.", with_job=True),
    "422": error("Audio or options this server cannot use, or the transcription failed (then with the job's"
                 " id)."),
    "504": error("The job is still queued or running after the server's synchronous wait: poll"
                 " /v1/jobs/{job_id}.", with_job=True),
}


def _legacy(operation_id: str, summary: str, *, with_mode: bool) -> Schema:
    return {"post": operation(
        operation_id, "oddasr", summary,
        {"200": ok_json("The transcript, rendered in output_format, as OddASR answered it.", "Text",
                        JOB_ID_HEADER), **SYNC_ERRORS, **MASKING_REFUSAL},
        description="Synchronous: the job is queued like any other and the answer waits for it.",
        request_body=job_form(with_mode=with_mode))}


def _openai_shaped(path_item: Schema) -> Schema:
    """The same operations, with every error answer in OpenAI's shape (see api/openai_errors.py)."""
    for op in path_item.values():
        for status, answer in op["responses"].items():
            if not status.startswith("2") and "content" in answer:
                op["responses"][status] = {**answer, "content": json_body(ref("OpenAIError"))}
    return path_item


def compat_paths() -> dict[str, Schema]:
    return {
        "/v1/asr": _legacy("transcribeOddAsr", "OddASR's transcription endpoint", with_mode=True),
        "/v1/asr/file": _legacy("transcribeOddAsrFile", "OddASR's endpoint, file mode", with_mode=False),
        "/v1/asr/sentence": _legacy("transcribeOddAsrSentence", "OddASR's endpoint, sentence mode",
                                    with_mode=False),
        "/v1/audio/transcriptions": _openai_shaped({"post": operation(
            "createTranscription", "openai", "OpenAI-compatible transcription (synchronous)",
            {"200": {"description": "The transcript in response_format.", "headers": JOB_ID_HEADER, "content": {
                "application/json": {"schema": {"anyOf": [ref("Text"), ref("VerboseTranscription")]}},
                "text/plain": {"schema": {"type": "string"}},
                "application/x-subrip": {"schema": {"type": "string"}},
                "text/vtt": {"schema": {"type": "string"}}}},
             **SYNC_ERRORS},
            request_body=multipart_body(TranscriptionForm, {"file": binary(AUDIO_DESCRIPTION)}))}),
        "/v1/models": _openai_shaped({"get": operation("listModels", "openai", "The models this server runs",
                                                       {"200": ok_json("The model list.", "ModelList")})}),
    }


def admin_paths() -> dict[str, Schema]:
    forbidden = error("The key is not an admin key.")
    key_id = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/v1/keys": {
            "get": operation("listKeys", "admin", "List API keys (never their secrets)",
                             {"200": ok_json("Every key, revoked ones too.", "ApiKeyList"), "403": forbidden}),
            "post": operation(
                "createKey", "admin", "Create an API key; the answer holds the key, once",
                {"201": ok_json("The new key.", "ApiKeyCreated"),
                 "400": error("Not a JSON object, or a field that is not valid."), "403": forbidden,
                 "408": error("The body arrived too slowly, or stalled."),
                 "413": error("The body is over max_request_body_bytes, chunked or not.")},
                request_body={"required": True, "content": json_body(ref("NewApiKey"))}),
        },
        "/v1/keys/{key_id}": {
            "delete": operation("revokeKey", "admin", "Revoke an API key",
                                {"200": ok_json("The key, revoked.", "ApiKey"),
                                 "403": forbidden, "404": error("No such key.")}, parameters=[key_id]),
        },
    }


def queue_paths() -> dict[str, Schema]:
    """GET /v1/queues, ready for the route that serves it: add it to build_document together
    with the route (tests/test_openapi.py refuses a documented operation that no route serves)."""
    return {"/v1/queues": {"get": operation(
        "listQueues", "service", "Per queue: depth, workers alive, measured real-time factor, estimated wait",
        {"200": ok_json("The queues.", "QueueList")})}}


def metrics_paths() -> dict[str, Schema]:
    """Prometheus' scrape: public unless the server sets `metrics_require_key`, hence the
    empty security alternative beside the two key schemes."""
    scrape = operation(
        "metrics", "service", "Prometheus metrics of the API processes, and the backlog at scrape time",
        {"200": {"description": "The Prometheus text exposition format.",
                 "content": {"text/plain": {"schema": {"type": "string"}}}},
         "403": error("metrics_require_key is set and the key is not an admin key.")},
        description="Public like /healthz, unless the server sets `metrics_require_key`: then it needs an"
                    " admin key (with auth required).")
    scrape["security"] = [{BEARER_SCHEME: []}, {API_KEY_SCHEME: []}, {}]
    return {"/metrics": {"get": scrape}}


def service_paths() -> dict[str, Schema]:
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "/healthz": {"get": operation("healthz", "service", "Liveness: the API process answers",
                                      {"200": ok_json("Alive.", "Health")}, public=True)},
        "/readyz": {"get": operation(
            "readyz", "service", "Readiness: dependencies answer and each queue has a loaded worker",
            {"200": ok_json("Ready.", "Readiness"),
             "503": {"description": "Not ready; the body says what is missing.",
                     "content": json_body(ref("Readiness"))}},
            description="Public. Without an admin key (with auth required), a failed check reads `failed` and"
                        " `queues` counts workers instead of naming them: exception text and host names go to"
                        " admin keys only.", public=True)},
        "/openapi.json": {"get": operation(
            "openapi", "service", "This document",
            {"200": {"description": "OpenAPI 3.1.", "content": json_body({"type": "object"})}}, public=True)},
        "/docs": {"get": operation("docs", "service", "The document as a browsable page (Swagger UI)",
                                   {"200": {"description": "The page.", "content": html}}, public=True)},
        "/docs/{asset}": {"get": operation(
            "docsAsset", "service", "Swagger UI's scripts and styles, served from the installed package",
            {"200": {"description": "The file.", "content": {"*/*": {"schema": {"type": "string"}}}},
             "404": error("No such file.")},
            parameters=[{"name": "asset", "in": "path", "required": True, "schema": {"type": "string"}}],
            public=True)},
        "/": {"get": operation("webPage", "service", "The web page: upload, jobs and live transcription",
                               {"200": {"description": "The page.", "content": html}}, public=True)},
        "/web/static/{filename}": {"get": operation(
            "webAsset", "service", "The web page's scripts and styles",
            {"200": {"description": "The file.", "content": {"*/*": {"schema": {"type": "string"}}}},
             "404": error("No such file.")},
            parameters=[{"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}],
            public=True)},
    }
