"""API keys over HTTP, for admin keys: the same operations as `oddasr keys`."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from api.auth import require_admin
from api.deps import deps
from api.request_models.bodies import NewApiKey
from shared.db.models import ApiKey
from shared.db.utc import iso
from shared.errors import BadRequestError

blueprint = Blueprint("keys", __name__)

LIMIT_FIELDS = ("requests_per_minute", "max_jobs_in_flight", "audio_seconds_per_day")


def key_to_dict(key: ApiKey) -> dict[str, object]:
    """Everything about a key except its secret, which is never stored."""
    return {
        "id": key.id, "name": key.name, "admin": key.is_admin,
        "limits": {name: getattr(key, name) for name in LIMIT_FIELDS},
        "created_at": iso(key.created_at), "last_used_at": iso(key.last_used_at),
        "revoked_at": iso(key.revoked_at),
    }


@blueprint.get("/v1/keys")
def list_keys():  # type: ignore[no-untyped-def]
    require_admin()
    return jsonify({"keys": [key_to_dict(key) for key in deps().api_keys.list()]})


@blueprint.post("/v1/keys")
def create_key():  # type: ignore[no-untyped-def]
    """JSON `{"name", "admin", "requests_per_minute", ...}`; the answer holds the key, once."""
    require_admin()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequestError('send a JSON object, e.g. {"name": "team-a"}')
    new_key = NewApiKey.parse(body)
    key, token = deps().api_keys.create(new_key.name, is_admin=new_key.admin, limits=new_key.limits)
    response = jsonify({**key_to_dict(key), "key": token})
    response.status_code = 201
    return response


@blueprint.delete("/v1/keys/<key_id>")
def revoke_key(key_id: str):  # type: ignore[no-untyped-def]
    require_admin()
    return jsonify(key_to_dict(deps().api_keys.revoke(key_id)))
