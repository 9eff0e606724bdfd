"""The answers' schemas, generated from the response models that build the answers
(shared/jobs/public_models.py, api/response_models, shared/render_models.py): what a route
returns and what the document says it returns come from one class."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api.openapi.request_schemas import REF_TEMPLATE, tidy

Schema = dict[str, Any]


def _without_defaults(node: Any, *, naming_properties: bool = False) -> Any:
    """An answer has values, not defaults: a model's `default` (None for a field left out of
    the JSON) says nothing to a client. A property called `default` stays."""
    if isinstance(node, list):
        return [_without_defaults(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {key: _without_defaults(value, naming_properties=key == "properties")
            for key, value in node.items() if naming_properties or key != "default"}


def response_components(*models: type[BaseModel]) -> dict[str, Schema]:
    """The models, and the models and enums they nest, as components, in their serialized
    form: a field without a default is required (always in the JSON)."""
    components: dict[str, Schema] = {}
    for model in models:
        schema = model.model_json_schema(mode="serialization", ref_template=REF_TEMPLATE)
        for name, part in {**schema.pop("$defs", {}), model.__name__: schema}.items():
            components[name] = _without_defaults(tidy(part))
    return components
