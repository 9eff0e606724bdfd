"""The published contract matches the code: every Flask route is in the OpenAPI document and
every documented operation is a route, the document is valid OpenAPI 3.1, and /docs works
with no request leaving the server. (tests/test_api_fuzz.py checks the answers themselves.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from api.openapi.document import build_document
from shared.config import Settings
from shared.db.migrate import upgrade_to_head
from shared.db.models import JobStatus
from shared.reprocess import STAGES as REPROCESS_STAGES
from shared.reprocess import stage_of

#: Methods Flask adds to every rule by itself; not operations of ours.
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
_CONVERTER_RE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def flask_operations(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every HTTP route; websocket routes are not HTTP operations."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.websocket:
            continue
        path = _CONVERTER_RE.sub(r"{\1}", rule.rule)
        operations |= {(path, method.lower()) for method in (rule.methods or set()) - IMPLICIT_METHODS}
    return operations


def documented_operations(document: dict) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


def make_app(tmp_path: Path, redis_url: str, **overrides: object) -> Flask:
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_url, **overrides)  # type: ignore[arg-type]
    upgrade_to_head(settings.database_url)
    return create_app(settings)


@pytest.fixture
def app(tmp_path: Path, redis_server) -> Flask:  # type: ignore[no-untyped-def]
    return make_app(tmp_path, redis_server.url)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        yield test_client


def test_every_route_is_documented_and_every_documented_operation_is_a_route(app: Flask) -> None:
    document = build_document(auth_required=False, version="test")
    routes, documented = flask_operations(app), documented_operations(document)
    assert routes - documented == set(), "routes missing from api/openapi: document them"
    assert documented - routes == set(), "documented operations that no route serves"


@pytest.mark.parametrize("auth_required", [False, True])
def test_the_document_is_valid_openapi_3_1(auth_required: bool) -> None:
    document = build_document(auth_required=auth_required, version="test")
    assert document["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI 3.1 meta-schema
    anonymous_allowed = {} in document["security"]
    assert anonymous_allowed is not auth_required


def test_every_operation_has_an_id_and_the_protected_ones_document_the_auth_answers() -> None:
    document = build_document(auth_required=True, version="test")
    ids = []
    for path, item in document["paths"].items():
        for operation in item.values():
            ids.append(operation["operationId"])
            statuses = set(operation["responses"])
            if operation.get("security") == []:
                assert path in {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/{asset}", "/",
                                "/web/static/{filename}"}
            elif {} in operation.get("security", []):
                assert path == "/metrics"  # public unless the server says otherwise
            else:
                assert {"401", "429", "503"} <= statuses, path
                assert "Retry-After" in operation["responses"]["429"]["headers"]
    assert len(ids) == len(set(ids))


def test_the_served_document_describes_the_running_servers_auth(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    app = make_app(tmp_path, redis_server.url, auth_mode="required", api_key_hash_secret="s")
    with app.test_client() as client:
        response = client.get("/openapi.json")  # public: it says how to authenticate
        assert response.status_code == 200
        assert response.json == build_document(auth_required=True, version=response.json["info"]["version"])
        assert client.get("/docs").status_code == 200
        assert client.get("/v1/jobs").status_code == 401


def test_docs_page_loads_everything_from_this_server(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.content_type.startswith("text/html")
    html = page.get_data(as_text=True)
    assert not re.search(r"(https?:)?//", html), "the page must not reach outside the server"
    assert '"validatorUrl": null' in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "docs/swagger-ui-bundle.js" in assets and "docs/swagger-ui.css" in assets  # relative to /docs
    assert '"url": "openapi.json"' in html
    for asset in assets:
        response = client.get(f"/{asset}")
        assert response.status_code == 200, asset
        assert len(response.data) > 100
        response.close()
    assert client.get("/docs/no-such-file.js").status_code == 404
    assert client.get("/docs/../api/app.py").status_code == 404


def test_a_method_a_route_does_not_take_is_405_naming_the_ones_it_does(client: FlaskClient) -> None:
    response = client.put("/v1/jobs")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert response.json is not None and "error" in response.json


def test_a_key_limit_past_the_documented_maximum_is_a_400_not_a_database_error(client: FlaskClient) -> None:
    maximum = build_document(auth_required=False, version="test")["components"]["schemas"]["NewApiKey"][
        "properties"]["requests_per_minute"]["maximum"]
    for value in (maximum + 1, 2**64):
        response = client.post("/v1/keys", json={"name": "big", "requests_per_minute": value})
        assert response.status_code == 400, response.json
    assert client.post("/v1/keys", json={"name": "big", "requests_per_minute": maximum}).status_code == 201


def test_the_documented_reprocessing_stages_are_every_stage_the_code_answers() -> None:
    statuses = [*(s.value for s in JobStatus), None]
    answered = {stage_of(session, child) for session in statuses[:-1] for child in statuses}
    assert answered == set(REPROCESS_STAGES)
