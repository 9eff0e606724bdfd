"""The document describes exactly what the API answers: real answers of the main endpoints,
from an app over a real database, Redis and storage, validated against the document's
generated schemas, with every object closed (a field the schema does not name fails), so a
field added to an answer but not to its model, or the other way round, is caught here."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.deps import EXTENSION_KEY, ApiDeps
from api.openapi.document import build_document
from shared.config import Settings
from shared.db.migrate import upgrade_to_head
from shared.db.models import JobStatus, utc_now
from shared.db.repository import STREAM_MODE
from shared.hotwords import HotwordEntry
from shared.jobs.keys import transcript_key
from shared.reprocess import reprocess_job_id
from shared.transcript import Segment, Transcript, Word
from tests.support.job_rows import job_row

TRANSCRIPT = Transcript(text="hello there", language="en", duration_s=2.0, engine="whisper", model="tiny.en",
                        segments=[Segment(start_s=0.0, end_s=1.0, text="hello", speaker=0, speaker_name="alice",
                                          speaker_similarity=0.9, words=[Word(word="hello", start_s=0.0, end_s=0.9)]),
                                  Segment(start_s=1.0, end_s=2.0, text="there", speaker=1)])


def closed(node: Any) -> Any:
    """The schema with every object that lists its properties closed to others (where it does
    not say otherwise itself): the document leaves them open for clients' sake, the test not."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: closed(value) for key, value in node.items()}
    if "properties" in node and "additionalProperties" not in node and node.get("type") == "object":
        node["additionalProperties"] = False
    return node


class Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.components = closed(copy.deepcopy(document["components"]))

    def check(self, response: Any, path: str, method: str) -> Any:
        """Validate a JSON answer against the schema of its (path, method, status)."""
        answers = self.document["paths"][path][method]["responses"]
        assert str(response.status_code) in answers, f"{method} {path}: {response.status_code} is not documented"
        content = answers[str(response.status_code)]["content"]
        assert response.mimetype in content, f"{method} {path}: {response.mimetype} is not documented"
        schema = {**closed(content[response.mimetype]["schema"]), "components": self.components}
        errors = [f"{e.instance_path}: {e.message}"
                  for e in jsonschema_rs.Draft202012Validator(schema).iter_errors(response.json)]
        assert not errors, f"{method} {path} {response.status_code}: {errors}\n{response.json}"
        return response.json


@pytest.fixture
def app(tmp_path: Path, redis_server) -> Flask:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_server.url)  # type: ignore[arg-type]
    upgrade_to_head(settings.database_url)
    from api.app import create_app
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture
def contract() -> Contract:
    return Contract(build_document(auth_required=False, version="test"))


def _succeeded(deps: ApiDeps, **columns: Any) -> str:
    job = deps.jobs.create(job_row(options={"language": "en", "hotwords": ["hello"]}, duration_s=2.0,
                                   callback_url="http://127.0.0.1:9/hook", **columns))
    deps.storage.put_bytes(transcript_key(job.id), TRANSCRIPT.model_dump_json().encode())
    assert deps.jobs.transition(job.id, JobStatus.RUNNING, started_at=utc_now(), worker="w:1", engine="whisper")
    assert deps.jobs.transition(job.id, JobStatus.SUCCEEDED, finished_at=utc_now(), transcript_key=transcript_key(
        job.id), progress=1.0, processing_s=0.5)
    return job.id


def test_the_job_answers_are_what_the_document_says(app: Flask, client: FlaskClient, contract: Contract) -> None:
    deps: ApiDeps = app.extensions[EXTENSION_KEY]
    queued = deps.jobs.create(job_row(filename="a.wav", size_bytes=10, duration_s=1.5)).id
    done = _succeeded(deps)
    session = deps.jobs.create(job_row(mode=STREAM_MODE, options={"language": "en", "reprocess": "offline",
                                                                 "protocol": "native", "sample_rate_hz": 16000})).id
    deps.jobs.add_stream_segment(session, 0, 0, 1000, "hello")
    assert deps.jobs.transition(session, JobStatus.SUCCEEDED, finished_at=utc_now())
    _succeeded(deps, id=reprocess_job_id(session))

    page = contract.check(client.get("/v1/jobs?limit=2"), "/v1/jobs", "get")
    assert page["total"] == 4 and page["next"]
    assert contract.check(client.get(f"/v1/jobs/{queued}"), "/v1/jobs/{job_id}", "get")["queue_position"] == 0
    result = contract.check(client.get(f"/v1/jobs/{done}"), "/v1/jobs/{job_id}", "get")["result"]
    assert result["segments"][0]["speaker_name"] == "alice" and "speaker_name" not in result["segments"][1]
    assert result["hotword_hits"][0]["word"] == "hello"
    live = contract.check(client.get(f"/v1/jobs/{session}"), "/v1/jobs/{job_id}", "get")
    assert live["stage"] == "reprocessed" and live["reprocessed"]["result"]["text"] == "hello there"
    for fmt in ("json", "verbose_json"):
        contract.check(client.get(f"/v1/jobs/{done}/transcript?format={fmt}"), "/v1/jobs/{job_id}/transcript", "get")
    deliveries = contract.check(client.get(f"/v1/jobs/{done}/webhooks"), "/v1/jobs/{job_id}/webhooks", "get")
    assert len(deliveries["deliveries"]) == 1
    contract.check(client.post(f"/v1/jobs/{done}/webhooks/redeliver"), "/v1/jobs/{job_id}/webhooks/redeliver",
                   "post")
    canceled = contract.check(client.delete(f"/v1/jobs/{queued}"), "/v1/jobs/{job_id}", "delete")
    assert canceled["status"] == "canceled"
    contract.check(client.get("/v1/jobs/no-such-job"), "/v1/jobs/{job_id}", "get")
    contract.check(client.get(f"/v1/jobs/{queued}/transcript"), "/v1/jobs/{job_id}/transcript", "get")  # 410


def test_the_other_answers_are_what_the_document_says(app: Flask, client: FlaskClient, contract: Contract) -> None:
    deps: ApiDeps = app.extensions[EXTENSION_KEY]
    created = contract.check(client.post("/v1/keys", json={"name": "team", "requests_per_minute": 5}), "/v1/keys",
                             "post")
    contract.check(client.get("/v1/keys"), "/v1/keys", "get")
    contract.check(client.delete(f"/v1/keys/{created['id']}"), "/v1/keys/{key_id}", "delete")
    contract.check(client.post("/v1/keys", json={"name": 5}), "/v1/keys", "post")  # 400
    contract.check(client.put("/v1/hotwords/team", json={"words": ["OddASR", {"word": "Alibaba", "weight": 20}]}),
                   "/v1/hotwords/{name}", "put")
    deps.default_hotwords.append(HotwordEntry("Brannigan", 10))
    listed = contract.check(client.get("/v1/hotwords"), "/v1/hotwords", "get")
    assert listed["default"]["read_only"] and listed["sets"][0]["name"] == "team"
    contract.check(client.get("/v1/hotwords/team"), "/v1/hotwords/{name}", "get")
    contract.check(client.get("/v1/hotwords/default"), "/v1/hotwords/{name}", "get")
    contract.check(client.delete("/v1/hotwords/team"), "/v1/hotwords/{name}", "delete")
    contract.check(client.get("/v1/speakers"), "/v1/speakers", "get")
    contract.check(client.get("/healthz"), "/healthz", "get")
    assert not contract.check(client.get("/readyz"), "/readyz", "get")["ready"]  # no worker here: 503
    contract.check(client.get("/v1/queues"), "/v1/queues", "get")
    contract.check(client.get("/v1/models"), "/v1/models", "get")
    refused = contract.check(client.post("/v1/audio/transcriptions", data={}), "/v1/audio/transcriptions", "post")
    assert refused["error"]["type"] == "invalid_request_error"
