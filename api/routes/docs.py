"""The published contract: `/openapi.json`, and `/docs`, a Swagger UI page to browse it.

Swagger UI's scripts and styles come from the flask-swagger-ui package's own copy, served
from here: no CDN, because the machines this runs on may have no internet. The page is our
own small HTML (not the package's template), so it sets `validatorUrl: null`, the one thing
that would otherwise make the browser call out (to validator.swagger.io).
"""

from __future__ import annotations

import json
from importlib import metadata, resources

from flask import Blueprint, Response, jsonify, send_from_directory

from api.deps import deps
from api.openapi.document import build_document

blueprint = Blueprint("docs", __name__)

DOCS_PATH = "/docs"
OPENAPI_PATH = "/openapi.json"
#: Swagger UI's dist folder inside the installed flask-swagger-ui package.
SWAGGER_UI_DIR = str(resources.files("flask_swagger_ui") / "dist")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>OddASR API</title>
  <link rel="stylesheet" href="{docs}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{docs}/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{docs}/swagger-ui-bundle.js"></script>
  <script>
    window.onload = function () {{
      window.ui = SwaggerUIBundle({config});
    }};
  </script>
</body>
</html>
"""


def _version() -> str:
    try:
        return metadata.version("oddasr")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0"


@blueprint.get(OPENAPI_PATH)
def openapi_document() -> Response:
    return jsonify(build_document(auth_required=deps().settings.auth_mode == "required", version=_version()))


@blueprint.get(DOCS_PATH)
def docs_page() -> Response:
    # Relative URLs, so the page also works behind a proxy that serves the API under a prefix.
    config = {"url": OPENAPI_PATH.lstrip("/"), "dom_id": "#swagger-ui", "deepLinking": True, "validatorUrl": None}
    return Response(_PAGE.format(docs=DOCS_PATH.lstrip("/"), config=json.dumps(config)),
                    content_type="text/html; charset=utf-8")


@blueprint.get(f"{DOCS_PATH}/<path:asset>")
def docs_asset(asset: str) -> Response:
    return send_from_directory(SWAGGER_UI_DIR, asset)
