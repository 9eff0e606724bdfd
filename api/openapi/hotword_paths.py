"""Hotword sets in the document: a key's named, versioned word lists (api/routes/hotwords.py)."""

from __future__ import annotations

from typing import Any

from api.hotword_sets import DEFAULT_SET, NO_SET
from api.openapi.components import error, json_body, ref
from api.openapi.operations import ok_json, operation
from api.routes.hotwords import MAX_BODY_BYTES, NAME_PATTERN

Schema = dict[str, Any]

TAG = "hotwords"

_NAME_DESCRIPTION = (f"The set's name: 1 to 64 letters, digits, `_`, `.` or `-`. `{DEFAULT_SET}` is the server's"
                     f" own set (read only); `{NO_SET}` is reserved.")


def _name(schema: Schema) -> Schema:
    return {"name": "name", "in": "path", "required": True, "schema": schema, "description": _NAME_DESCRIPTION}


#: Reading takes any name (an unknown one is 404); writing checks it (400).
_ANY_NAME = _name({"type": "string"})
_WRITABLE_NAME = _name({"type": "string", "pattern": NAME_PATTERN.pattern, "not": {"enum": [DEFAULT_SET, NO_SET]}})
_DELETABLE_NAME = _name({"type": "string", "not": {"const": DEFAULT_SET}})
_NOT_FOUND = error("The key has no set of that name (or the server has no default set).")


def hotword_paths() -> dict[str, Schema]:
    put_body = {"required": True, "description": f"At most {MAX_BODY_BYTES} bytes.", "content": {
        **json_body(ref("HotwordSetBody")),
        "text/plain": {"schema": {"type": "string"},
                       "example": "Alibaba 20\nOddASR\n"},
    }}
    return {
        "/v1/hotwords": {"get": operation(
            "listHotwordSets", TAG, "The key's hotword sets, and the server's default set",
            {"200": ok_json("The sets, without their words.", "HotwordSetList")})},
        "/v1/hotwords/{name}": {
            "get": operation("getHotwordSet", TAG, "A hotword set with its words",
                             {"200": ok_json("The set.", "HotwordSet"), "404": _NOT_FOUND}, parameters=[_ANY_NAME]),
            "put": operation(
                "putHotwordSet", TAG, "Create or replace a set (each replace is a new version)",
                {"200": ok_json("Replaced: the new version.", "HotwordSet"),
                 "201": ok_json("Created.", "HotwordSet"),
                 "400": error("A reserved or malformed name, an empty or malformed list, or too many entries."),
                 "413": error("The body is over 256 KiB, chunked or not (read no further)."),
                 "408": error("The body arrived too slowly, or stalled.")},
                description="JSON (`{\"words\": [{\"word\": \"Alibaba\", \"weight\": 20}, \"OddASR\"]}`) or the"
                            " original's hotword file as text: `word weight` a line, the weight optional.",
                parameters=[_WRITABLE_NAME], request_body=put_body),
            "delete": operation(
                "deleteHotwordSet", TAG, "Delete a set",
                {"200": {"description": "Deleted.", "content": json_body({
                    "type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "string"}}})},
                 "400": error("The default set cannot be deleted here."), "404": _NOT_FOUND},
                parameters=[_DELETABLE_NAME]),
        },
    }
