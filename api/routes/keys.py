"""API keys over HTTP, for admin keys: the same operations as `oddasr keys`."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, jsonify, request

from api.auth import require_admin
from api.deps import deps
from shared.db.api_keys import KeyLimits
from shared.db.models import ApiKey
from shared.errors import BadRequestError

blueprint = Blueprint("keys", __name__)

LIMIT_FIELDS = ("requests_per_minute", "max_jobs_in_flight", "audio_seconds_per_day")


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def key_to_dict(key: ApiKey) -> dict[str, object]:
    """Everything about a key except its secret, which is never stored."""
    return {
        "id": key.id, "name": key.name, "admin": key.is_admin,
        "limits": {name: getattr(key, name) for name in LIMIT_FIELDS},
        "created_at": _iso(key.created_at), "last_used_at": _iso(key.last_used_at),
        "revoked_at": _iso(key.revoked_at),
    }


def _optional_limit(body: dict[str, object], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequestError(f"'{name}' must be a whole number, 0 or more (0: no limit), or null (the default)")
    return value


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
    name = body.get("name")
    if not isinstance(name, str):
        raise BadRequestError("'name' is required: a string of 1 to 128 characters")
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise BadRequestError("'admin' must be true or false")
    limits = KeyLimits(**{field: _optional_limit(body, field) for field in LIMIT_FIELDS})
    key, token = deps().api_keys.create(name, is_admin=admin, limits=limits)
    response = jsonify({**key_to_dict(key), "key": token})
    response.status_code = 201
    return response


@blueprint.delete("/v1/keys/<key_id>")
def revoke_key(key_id: str):  # type: ignore[no-untyped-def]
    require_admin()
    return jsonify(key_to_dict(deps().api_keys.revoke(key_id)))
