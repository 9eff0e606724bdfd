"""Which hotwords a job uses: a named set of its key (or the server's default set from the
original's hotword file), then the request's inline hotwords; heaviest first."""

from __future__ import annotations

from api.deps import ApiDeps
from api.principal import Principal
from shared.db.hotword_sets import entries_of
from shared.errors import BadRequestError
from shared.hotwords import DEFAULT_WEIGHT, MAX_ENTRIES, by_weight, content_version
from shared.schemas import JobOptions

DEFAULT_SET = "default"
NO_SET = "none"


def owner_of(principal: Principal) -> str:
    return principal.key_id or ""


def default_set_version(deps: ApiDeps) -> str:
    return f"file-{content_version(deps.default_hotwords)}"


def resolve_hotwords(deps: ApiDeps, principal: Principal, requested: str | None, options: JobOptions) -> JobOptions:
    """The options with the set's words merged in. No set named: the default set, if the
    server has one; `none`: no set at all."""
    name = (requested or "").strip()
    if name.lower() == NO_SET:
        return options
    if not name or name == DEFAULT_SET:
        if not deps.default_hotwords:
            if name:
                raise BadRequestError("this server has no default hotword set (hotwords_path)")
            return options
        entries, version, set_name = deps.default_hotwords, default_set_version(deps), DEFAULT_SET
    else:
        row = deps.hotword_sets.find(owner_of(principal), name) if len(name) <= 64 else None
        if row is None:
            raise BadRequestError(f"unknown hotword set {name[:64]!r}: GET /v1/hotwords lists yours")
        entries, version, set_name = entries_of(row), str(row.version), row.name
    ordered = by_weight(entries)
    known = {entry.word.lower() for entry in ordered}
    inline = [word for word in options.hotwords if word.lower() not in known]
    words = [entry.word for entry in ordered] + inline
    if len(words) > MAX_ENTRIES:
        raise BadRequestError(f"the set and the request hold {len(words)} hotwords; at most {MAX_ENTRIES}")
    weights = {entry.word: entry.weight for entry in ordered} | {word: DEFAULT_WEIGHT for word in inline}
    return options.model_copy(update={"hotwords": words, "hotword_weights": weights, "hotword_set": set_name,
                                      "hotword_set_version": version})
