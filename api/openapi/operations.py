"""Building the document's operations from a table of rows (paths.py). Generic: it knows the
shape of an OpenAPI operation, nothing of this API's routes. An answer in a row is an error's
words, a (words, model) pair, (words, model, headers), or a whole answer object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

Schema = dict[str, Any]
Answer = str | tuple[str, type[BaseModel]] | tuple[str, type[BaseModel], Schema] | Schema


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: Schema) -> dict[str, Schema]:
    return {"application/json": {"schema": schema}}


def error(description: str, *, retry_after: bool = False, with_job: bool = False) -> Schema:
    """An error answer: always `{"error": "..."}` JSON (with the job's id where one exists)."""
    answer: Schema = {"description": description, "content": json_body(ref("JobError" if with_job else "Error"))}
    if retry_after:
        answer["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    return answer


def path_parameter(name: str, description: str | None = None, **schema: Any) -> Schema:
    parameter = {"name": name, "in": "path", "required": True, "schema": {"type": "string", **schema}}
    return {**parameter, "description": description} if description else parameter


@dataclass(frozen=True)
class Op:
    """One row of the table: an operation, its answers by status and its request parts."""

    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    answers: dict[int, Answer]
    description: str | None = None
    parameters: list[Schema] = field(default_factory=list)
    body: Schema | None = None
    #: None: the document's (a key); []: public (no key); else these alternatives.
    security: list[dict[str, list[str]]] | None = None
    #: Error answers in OpenAI's shape (api/openai_errors.py).
    openai: bool = False


def _answer(spec: Answer) -> Schema:
    if isinstance(spec, str):
        return error(spec)
    if isinstance(spec, tuple):
        described = {"description": spec[0], "content": json_body(ref(spec[1].__name__))}
        return {**described, "headers": spec[2]} if len(spec) == 3 else described
    return spec


def operation(op: Op, auth_answers: dict[str, Schema]) -> Schema:
    """The operation object; `auth_answers` are added to every one that may take a key."""
    built: Schema = {"operationId": op.operation_id, "tags": [op.tag], "summary": op.summary}
    if op.description:
        built["description"] = op.description
    if op.parameters:
        built["parameters"] = op.parameters
    if op.body:
        built["requestBody"] = op.body
    answers = {str(status): _answer(spec) for status, spec in op.answers.items()}
    if op.security != []:
        answers = {**auth_answers, **answers}
    if op.security is not None:
        built["security"] = op.security
    if op.openai:
        answers = {status: {**answer, "content": json_body(ref("OpenAIError"))}
                   if not status.startswith("2") and "content" in answer else answer
                   for status, answer in answers.items()}
    built["responses"] = dict(sorted(answers.items()))
    return built


def models_of(table: list[Op]) -> list[type[BaseModel]]:
    """The models the table's answers name: each becomes a component, with what it nests."""
    return [spec[1] for op in table for spec in op.answers.values() if isinstance(spec, tuple)]


def paths_of(table: list[Op], auth_answers: dict[str, Schema]) -> dict[str, Schema]:
    paths: dict[str, Schema] = {}
    for op in table:
        paths.setdefault(op.path, {})[op.method] = operation(op, auth_answers)
    return paths
