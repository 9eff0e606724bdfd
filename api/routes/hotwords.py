"""Named hotword sets of the caller's key: list, read, create or replace, delete.

`PUT /v1/hotwords/{name}` takes JSON (`{"words": [{"word": "Alibaba", "weight": 20}, ...]}`)
or the original's file format as text (`Alibaba 20` a line). Every replace is a new version;
a job records the version it used. The server's default set (`hotwords_path`) reads as
`default` and cannot be changed here.
"""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request

from api.auth import current_principal
from api.body_limits import body_limit
from api.deps import deps
from api.hotword_sets import DEFAULT_SET, NO_SET, default_set_version, owner_of
from api.request_models.bodies import HotwordSetBody
from api.response_models import resources as out
from shared.db.hotword_sets import entries_of
from shared.db.models import HotwordSet
from shared.db.utc import iso
from shared.errors import BadRequestError, NotFoundError
from shared.hotwords import HotwordEntry, parse_hotword_lines

blueprint = Blueprint("hotwords", __name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: A set's body, JSON or text, chunked or not; Werkzeug stops reading past it (413).
MAX_BODY_BYTES = 256 * 1024


def _summary(fields: dict[str, object], entries: list[HotwordEntry], *,
             with_words: bool) -> out.HotwordSetSummary:
    if not with_words:
        return out.HotwordSetSummary(**fields, count=len(entries))
    return out.HotwordSet(**fields, count=len(entries),
                          words=[out.HotwordOut(word=e.word, weight=e.weight) for e in entries])


def set_model(row: HotwordSet, *, with_words: bool) -> out.HotwordSetSummary:
    return _summary({"name": row.name, "version": str(row.version), "created_at": iso(row.created_at),
                     "updated_at": iso(row.updated_at)}, entries_of(row), with_words=with_words)


def _default_set(*, with_words: bool) -> out.HotwordSetSummary:
    d = deps()
    return _summary({"name": DEFAULT_SET, "version": default_set_version(d), "read_only": True,
                     "source": str(d.settings.hotwords_path)}, d.default_hotwords, with_words=with_words)


def _checked_name(name: str) -> str:
    if name in (DEFAULT_SET, NO_SET):
        raise BadRequestError(f"{name!r} is reserved: the default set comes from the server's hotword file")
    if not NAME_PATTERN.match(name):
        raise BadRequestError("a set's name is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter "
                              "or digit")
    return name


@blueprint.get("/v1/hotwords")
def list_sets():  # type: ignore[no-untyped-def]
    d = deps()
    sets = [set_model(row, with_words=False) for row in d.hotword_sets.list(owner_of(current_principal()))]
    return jsonify(out.HotwordSetList(sets=sets, default=_default_set(with_words=False) if d.default_hotwords
                                      else None).public())


@blueprint.get("/v1/hotwords/<name>")
def get_set(name: str):  # type: ignore[no-untyped-def]
    d = deps()
    if name == DEFAULT_SET:
        if not d.default_hotwords:
            raise NotFoundError("this server has no default hotword set (hotwords_path)")
        return jsonify(_default_set(with_words=True).public())
    return jsonify(set_model(d.hotword_sets.get(owner_of(current_principal()), name[:64]), with_words=True).public())


@blueprint.put("/v1/hotwords/<name>")
@body_limit(MAX_BODY_BYTES)
def put_set(name: str):  # type: ignore[no-untyped-def]
    name = _checked_name(name)
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or "words" not in body:
            raise BadRequestError('send {"words": [{"word": "...", "weight": 20}, ...]} or the file format as text')
        entries = HotwordSetBody.parse(body).entries
    else:
        entries = parse_hotword_lines(request.get_data(as_text=True))
    if not entries:
        raise BadRequestError("the set holds no hotwords")
    d = deps()
    row, created = d.hotword_sets.put(owner_of(current_principal()), name, entries,
                                      max_sets=d.settings.max_hotword_sets_per_key)
    response = jsonify(set_model(row, with_words=True).public())
    response.status_code = 201 if created else 200
    return response


@blueprint.delete("/v1/hotwords/<name>")
def delete_set(name: str):  # type: ignore[no-untyped-def]
    if name == DEFAULT_SET:
        raise BadRequestError("the default set comes from the server's hotword file (hotwords_path)")
    deps().hotword_sets.delete(owner_of(current_principal()), name[:64])
    return jsonify(out.Deleted(deleted=name[:64]).public())
