"""API keys over HTTP, for admin keys: the same operations as `oddasr keys`."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from api.auth import require_admin
from api.deps import deps
from api.request_models.bodies import NewApiKey
from api.response_models import keys as out
from shared.errors import BadRequestError

blueprint = Blueprint("keys", __name__)

@blueprint.get("/v1/keys")
def list_keys():  # type: ignore[no-untyped-def]
    require_admin()
    return jsonify(out.ApiKeyList(keys=[out.ApiKey.of(key) for key in deps().api_keys.list()]).public())


@blueprint.post("/v1/keys")
def create_key():  # type: ignore[no-untyped-def]
    """JSON `{"name", "admin", "requests_per_minute", ...}`; the answer holds the key, once."""
    require_admin()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequestError('send a JSON object, e.g. {"name": "team-a"}')
    new_key = NewApiKey.parse(body)
    key, token = deps().api_keys.create(new_key.name, is_admin=new_key.admin, limits=new_key.limits)
    response = jsonify(out.ApiKeyCreated(**out.ApiKey.of(key).model_dump(), key=token).public())
    response.status_code = 201
    return response


@blueprint.delete("/v1/keys/<key_id>")
def revoke_key(key_id: str):  # type: ignore[no-untyped-def]
    require_admin()
    return jsonify(out.ApiKey.of(deps().api_keys.revoke(key_id)).public())
