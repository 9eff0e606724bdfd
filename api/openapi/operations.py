"""Building one OpenAPI operation: the answers every authenticated route can give are added
here once, so a route's description lists only what is its own."""

from __future__ import annotations

from typing import Any

from api.openapi.components import error, json_body, ref

Schema = dict[str, Any]

#: Answered by the key check that runs before every authenticated route.
AUTH_ANSWERS: dict[str, Schema] = {
    "401": {**error("No API key, or one this server does not know (or revoked). Only with auth required."),
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
    "429": error("Over a limit: the key's requests per minute (or, on submissions, its jobs in flight or"
                 " audio seconds per day, or this address's uploads at once). The message names the limit.",
                 retry_after=True),
    "503": error("A dependency (database, Redis, storage) is unavailable; try again shortly.", retry_after=True),
}

NOT_FOUND = error("No such job, or one that belongs to another key (the same answer, so ids leak nothing).")


def job_id_parameter() -> Schema:
    return {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "The job's id, as returned on submission."}


def operation(operation_id: str, tag: str, summary: str, responses: dict[str, Schema], *,
              description: str | None = None, parameters: list[Schema] | None = None,
              request_body: Schema | None = None, public: bool = False) -> Schema:
    """An operation object; `public` ones need no key (probes, the contract itself)."""
    op: Schema = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if request_body:
        op["requestBody"] = request_body
    answers = dict(responses)
    if public:
        op["security"] = []
    else:
        for status, answer in AUTH_ANSWERS.items():
            answers.setdefault(status, answer)
    op["responses"] = dict(sorted(answers.items()))
    return op


def ok_json(description: str, schema_name: str, headers: Schema | None = None) -> Schema:
    answer: Schema = {"description": description, "content": json_body(ref(schema_name))}
    if headers:
        answer["headers"] = headers
    return answer
