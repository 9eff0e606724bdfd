"""The webhook endpoints and the callback_url checks of every submit endpoint, in-process
(Flask's test client, a real Redis, SQLite, local storage; no worker runs, so nothing is sent)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from flask.testing import FlaskClient

from api.app import create_app
from api.deps import EXTENSION_KEY
from shared.config import Settings
from shared.db.migrate import upgrade_to_head
from shared.db.models import JobStatus, utc_now
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from tests.support.errors import error_message

#: Never resolves (RFC 6761), so even a delivery attempted by mistake would go nowhere.
CALLBACK = "https://hooks.example.invalid/oddasr"


def wav_bytes(duration_s: float = 0.5, sample_rate_hz: int = 16000) -> bytes:
    t = np.arange(int(duration_s * sample_rate_hz)) / sample_rate_hz
    buffer = io.BytesIO()
    soundfile.write(buffer, 0.3 * np.sin(2 * np.pi * 440 * t), sample_rate_hz, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def app_client(tmp_path: Path, redis_url: str, **overrides: object) -> Iterator[FlaskClient]:
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_url, enqueue_timeout_s=2.0, **overrides)
    upgrade_to_head(settings.database_url)
    with create_app(settings).test_client() as client:
        yield client


@pytest.fixture
def client(tmp_path: Path, redis_server) -> Iterator[FlaskClient]:  # type: ignore[no-untyped-def]
    yield from app_client(tmp_path, redis_server.url, webhook_secrets=["whsec_YWJjZGVmZ2hpamtsbW5vcA=="])


def post(client: FlaskClient, path: str = "/v1/jobs", field: str = "audio", **form: str):  # type: ignore[no-untyped-def]
    return client.post(path, data={**form, field: (io.BytesIO(wav_bytes()), "a.wav")},
                       content_type="multipart/form-data")


def test_without_a_signing_secret_callback_urls_are_refused(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    for client in app_client(tmp_path, redis_server.url):
        response = post(client, callback_url=CALLBACK)
        assert response.status_code == 400
        assert "ODDASR_WEBHOOK_SECRETS" in response.get_json()["error"]
        assert client.get("/v1/jobs").get_json()["total"] == 0


def test_every_submit_endpoint_checks_the_url(client: FlaskClient) -> None:
    cases = [("/v1/jobs", "audio", {"callback_url": "http://169.254.169.254/latest/meta-data/"}),
             ("/v1/asr", "audio", {"webhook_url": "http://[::ffff:10.0.0.1]/"}),
             ("/v1/asr/file", "audio", {"callback_url": "http://user:pw@hooks.example.invalid/"}),
             ("/v1/audio/transcriptions", "file", {"callback_url": "ftp://hooks.example.invalid/"})]
    for path, field, form in cases:
        response = post(client, path, field, **form)
        assert response.status_code == 400, (path, response.get_data(as_text=True))
        assert "callback_url" in error_message(response.get_json())
    assert client.get("/v1/jobs").get_json()["total"] == 0


def test_delivery_log_and_redeliver(client: FlaskClient) -> None:
    assert client.get("/v1/jobs/nope/webhooks").status_code == 404
    created = post(client, callback_url=CALLBACK).get_json()
    job_id = created["id"]
    assert created["callback_url"] == CALLBACK
    log = client.get(f"/v1/jobs/{job_id}/webhooks").get_json()
    assert log == {"job_id": job_id, "callback_url": CALLBACK, "deliveries": []}  # not final yet
    assert client.post(f"/v1/jobs/{job_id}/webhooks/redeliver").status_code == 404
    assert client.delete(f"/v1/jobs/{job_id}").get_json()["status"] == "canceled"
    [delivery] = client.get(f"/v1/jobs/{job_id}/webhooks").get_json()["deliveries"]
    assert delivery["event_type"] == "job.canceled" and delivery["state"] == "pending"
    assert delivery["id"].startswith("msg_") and delivery["attempts"] == [] and delivery["next_attempt_at"]
    # DELETE deleted the job's data, and its stored events with it: nothing to send again.
    response = client.post(f"/v1/jobs/{job_id}/webhooks/redeliver")
    assert response.status_code == 410 and "was deleted" in response.get_json()["error"]
    # A job that ended by itself sends its last event again, same id.
    failed_id = post(client, callback_url=CALLBACK).get_json()["id"]
    database_url = client.application.extensions[EXTENSION_KEY].settings.database_url
    jobs = JobRepository(make_session_factory(make_engine(database_url)))
    assert jobs.transition(failed_id, JobStatus.FAILED, error="bad audio", finished_at=utc_now())
    [failed] = client.get(f"/v1/jobs/{failed_id}/webhooks").get_json()["deliveries"]
    response = client.post(f"/v1/jobs/{failed_id}/webhooks/redeliver")
    assert response.status_code == 202 and response.get_json()["id"] == failed["id"]
