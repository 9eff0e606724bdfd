"""The request parts of the document, generated from the request models (api/request_models)
that the routes validate with: forms, query parameters and JSON bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

Schema = dict[str, Any]

REF_TEMPLATE = "#/components/schemas/{model}"


def tidy(node: Any, *, naming_properties: bool = False) -> Any:
    """pydantic's schema in the document's style: no `title`s (they repeat the field names; a
    property called `title` stays), and `X | None` as `"type": [X, "null"]` where X is one type."""
    if isinstance(node, list):
        return [tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: tidy(value, naming_properties=key == "properties")
            for key, value in node.items() if naming_properties or key != "title"}
    alternatives = node.get("anyOf", [])
    if len(alternatives) == 2 and {"type": "null"} in alternatives:
        (other,) = (a for a in alternatives if a != {"type": "null"})
        if isinstance(other.get("type"), str):
            rest = {key: value for key, value in node.items() if key != "anyOf" and (key, value) != ("default", None)}
            node = {**other, "type": [other["type"], "null"], **rest}
    return node


def _never_null(field: Schema) -> Schema:
    """A form field or query parameter is absent or a string, never null: `X | None` reads as X."""
    if isinstance(field.get("type"), list):
        field = {**field, "type": next(t for t in field["type"] if t != "null")}
    return field


def model_schema(model: type[BaseModel]) -> Schema:
    """The model's input schema; nested models are referenced in components (`component_schemas`)."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    schema.pop("$defs", None)
    return tidy(schema)


def component_schemas(*models: type[BaseModel]) -> dict[str, Schema]:
    """The models, and the models they nest, as components."""
    components: dict[str, Schema] = {}
    for model in models:
        defs = model.model_json_schema(ref_template=REF_TEMPLATE).get("$defs", {})
        components.update({name: tidy(schema) for name, schema in defs.items()})
        components[model.__name__] = model_schema(model)
    return components


def _fields(model: type[BaseModel], without: tuple[str, ...]) -> tuple[dict[str, Schema], list[str]]:
    schema = model_schema(model)
    properties = {name: _never_null(field) for name, field in schema["properties"].items() if name not in without}
    return properties, [name for name in schema.get("required", []) if name not in without]


def binary(description: str) -> Schema:
    return {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream",
            "description": description}


def multipart_body(model: type[BaseModel], files: dict[str, Schema], *, without: tuple[str, ...] = ()) -> Schema:
    """A multipart form: its file parts (received by api/uploads.py, all required), then the model's fields."""
    properties, required = _fields(model, without)
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": [*files, *required], "properties": {**files, **properties}}}}}


def query_parameters(model: type[BaseModel]) -> list[Schema]:
    properties, required = _fields(model, ())
    parameters = []
    for name, field in properties.items():
        description = field.pop("description", None)
        parameter = {"name": name, "in": "query", "required": name in required, "schema": field}
        parameters.append({**parameter, "description": description} if description else parameter)
    return parameters
