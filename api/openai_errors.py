"""OpenAI's error shape for the OpenAI-compatible routes.

OpenAI's SDKs turn an error answer into an exception whose text is `error.message`; given
OddASR's flat `{"error": "..."}` they show only "Error code: 400" and the user never learns
which field was wrong. So on these routes every error (ours, Werkzeug's, auth's, admission's)
is `{"error": {"message", "type", "param", "code"}}`, with `type` and `code` from OpenAI's own
vocabulary for the status.
"""

from __future__ import annotations

from api.response_models.errors import OpenAIErrorDetail

#: The routes OpenAI clients call (`/v1/audio/transcriptions`, `/v1/models`).
OPENAI_PATH_PREFIXES = ("/v1/audio/", "/v1/models")

#: status -> (type, code) as OpenAI's API answers them.
_KINDS_BY_STATUS: dict[int, tuple[str, str | None]] = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    413: ("invalid_request_error", "file_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PATH_PREFIXES)


def openai_error_body(message: str, status: int, param: str | None = None) -> OpenAIErrorDetail:
    if status >= 500:
        kind, code = "server_error", None
    else:
        kind, code = _KINDS_BY_STATUS.get(status, ("invalid_request_error", None))
    return OpenAIErrorDetail(message=message, type=kind, param=param, code=code)
