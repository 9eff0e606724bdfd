"""Serves the page and its static files; both are public (api/auth.py), since a visitor
must be able to load the page before typing the API key the page then sends."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, Response, render_template

from api.deps import deps
from shared.config import Settings
from shared.engines_catalog import file_engine

PAGE_PATH = "/"
#: Under its own prefix so the static files never shadow an API route (see PUBLIC_PREFIXES).
STATIC_URL_PATH = "/web/static"

blueprint = Blueprint("web", __name__, template_folder=str(Path(__file__).parent / "templates"),
                      static_folder=str(Path(__file__).parent / "static"), static_url_path=STATIC_URL_PATH)


def page_config(settings: Settings) -> dict[str, object]:
    """What the page needs to offer only what this server accepts: its languages, whether
    it can label speakers, whether it needs a key, whether live streaming is on and how long a
    dropped live session may be resumed."""
    engine = file_engine(settings)
    return {
        "engine": engine.name,
        "languages": list(engine.languages(settings)),
        "diarize": engine.supports_diarization(settings),
        "auth_required": settings.auth_mode == "required",
        "streaming": not settings.disable_stream,
        # How long the server holds a dropped session for its client to come back.
        "resume_window_s": settings.stream_resume_window_s,
    }


@blueprint.get(PAGE_PATH)
def index() -> Response:
    # Into a data attribute, which Jinja's autoescaping makes safe whatever the values hold.
    body = render_template("index.html", config_json=json.dumps(page_config(deps().settings)))
    response = Response(body, content_type="text/html; charset=utf-8")
    # The page is a shell; its data comes from the API. A fresh copy after an upgrade matters
    # more than the few hundred bytes a cache would save.
    response.headers["Cache-Control"] = "no-cache"
    return response
