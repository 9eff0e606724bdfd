"""Bad input at the API: each answer is a 4xx with a message, and nothing is stored or queued.

These use Flask's test client in-process with a real Redis, SQLite and local storage; no
worker runs, so a job that got queued by mistake would be visible as a queued row.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
import soundfile
from flask.testing import FlaskClient

from api.app import create_app
from shared.config import Settings
from shared.db.migrate import upgrade_to_head
from tests.support.errors import error_message
from tests.support.servers import free_port


def wav_bytes(duration_s: float, sample_rate_hz: int = 16000) -> bytes:
    t = np.arange(int(duration_s * sample_rate_hz)) / sample_rate_hz
    buffer = io.BytesIO()
    soundfile.write(buffer, 0.3 * np.sin(2 * np.pi * 440 * t), sample_rate_hz, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def make_settings(tmp_path: Path, redis_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"data_dir": tmp_path / "data", "redis_url": redis_url,
                                 "max_upload_bytes": 2 * 1024 * 1024, "max_audio_duration_s": 20.0,
                                 "max_sentence_duration_s": 5.0, "enqueue_timeout_s": 2.0}
    values.update(overrides)
    settings = Settings(**values)
    upgrade_to_head(settings.database_url)
    return settings


@pytest.fixture
def settings(tmp_path: Path, redis_server) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings(tmp_path, redis_server.url)


@pytest.fixture
def client(settings: Settings) -> Iterator[FlaskClient]:
    app = create_app(settings)
    with app.test_client() as test_client:
        yield test_client


def post(client: FlaskClient, data: bytes | None, name: str = "a.wav", path: str = "/v1/jobs", field: str = "audio",
         **form: str):  # type: ignore[no-untyped-def]
    body: dict[str, object] = dict(form)
    if data is not None:
        body[field] = (io.BytesIO(data), name)
    return client.post(path, data=body, content_type="multipart/form-data")


def stored_objects(settings: Settings) -> list[Path]:
    root = Path(settings.storage_local_dir)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def assert_error(response, status: int, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)
    message = error_message(response.get_json())
    for word in words:
        assert word in message.lower(), message


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/asr", "/v1/asr/file", "/v1/asr/sentence"])
def test_missing_audio_is_400(client: FlaskClient, path: str) -> None:
    assert_error(post(client, None, path=path), 400, "audio")


def test_missing_file_on_openai_endpoint_is_400(client: FlaskClient) -> None:
    assert_error(post(client, None, path="/v1/audio/transcriptions"), 400, "file")


def test_empty_file_is_400(client: FlaskClient, settings: Settings) -> None:
    assert_error(post(client, b""), 400, "empty")
    assert stored_objects(settings) == []


@pytest.mark.parametrize("payload", [np.random.default_rng(1).bytes(50_000), b"hello, this is a text file\n" * 100,
                                     b"\x89PNG\r\n\x1a\n" + bytes(2000)])
def test_bytes_that_are_not_audio_are_415(client: FlaskClient, settings: Settings, payload: bytes) -> None:
    assert_error(post(client, payload, name="x.wav"), 415, "audio")
    assert stored_objects(settings) == []


def test_truncated_wav_is_refused_with_a_reason(client: FlaskClient, settings: Settings) -> None:
    response = post(client, wav_bytes(1.0)[:60])
    assert response.status_code in (415, 422)
    assert response.get_json()["error"]
    # Cut after its header (a recording or upload cut off): libsndfile read it without a word.
    assert_error(post(client, wav_bytes(12.0)[:30_000]), 422, "truncated", "12.0 s", "0.9 s")
    assert stored_objects(settings) == []


def test_upload_over_the_size_limit_is_413(client: FlaskClient, settings: Settings) -> None:
    assert_error(post(client, wav_bytes(80.0)), 413, "limit")  # 2.5 MB > 2 MB
    assert stored_objects(settings) == []


def test_audio_over_the_duration_limit_is_422(client: FlaskClient) -> None:
    assert_error(post(client, wav_bytes(30.0, sample_rate_hz=8000)), 422, "longer")
    assert_error(post(client, wav_bytes(8.0), mode="sentence"), 422, "longer")


@pytest.mark.parametrize(("field", "value", "word"), [
    ("mode", "stream", "mode"), ("output_format", "docx", "output_format"), ("diarize", "maybe", "diarize"),
    ("language", "english please", "language"), ("min_speakers", "two", "min_speakers"),
    ("max_speakers", "0", "max_speakers"),
])
def test_bad_options_are_400(client: FlaskClient, field: str, value: str, word: str) -> None:
    assert_error(post(client, wav_bytes(1.0), **{field: value}), 400, word)


def test_speaker_bounds_need_diarize_and_must_be_ordered(client: FlaskClient) -> None:
    assert_error(post(client, wav_bytes(1.0), min_speakers="2"), 400, "diarize")
    assert_error(post(client, wav_bytes(1.0), diarize="true", min_speakers="3", max_speakers="2"), 400, "larger")


def test_options_the_engine_cannot_honour_are_refused_not_ignored(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    app = create_app(make_settings(tmp_path, redis_server.url, engine="funasr"))
    with app.test_client() as funasr_client:
        assert_error(post(funasr_client, wav_bytes(1.0), word_timestamps="true"), 422, "word timestamps", "funasr")


def test_a_valid_upload_is_stored_under_a_server_key_and_queued(client: FlaskClient, settings: Settings) -> None:
    response = post(client, wav_bytes(1.5), name="../../etc/passwd.wav", hotwords="alpha beta")
    assert response.status_code == 202
    job = response.get_json()
    assert job["status"] == "queued" and job["options"]["hotwords"] == ["alpha", "beta"]
    assert abs(job["audio_duration_s"] - 1.5) < 0.05
    stored = stored_objects(settings)
    assert [p.relative_to(settings.storage_local_dir).as_posix() for p in stored] == [f"audio/{job['id']}"]
    queued = redis.Redis.from_url(settings.effective_redis_url).llen("cpu")
    assert queued >= 1
    assert client.get(f"/v1/jobs/{job['id']}/transcript").status_code == 409


def test_redis_down_at_submit_is_503_and_the_job_is_not_left_queued(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings)
    with app.test_client() as client:
        response = post(client, wav_bytes(1.0))
        assert_error(response, 503, "queue")
        jobs = client.get("/v1/jobs").get_json()["jobs"]
        assert [j["status"] for j in jobs] == ["failed"]
        assert stored_objects(settings) == []
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["checks"]["redis"] != "ok"


def test_unknown_routes_and_methods_answer_json(client: FlaskClient) -> None:
    assert_error(client.get("/v1/nothing"), 404)
    assert client.put("/v1/jobs").status_code == 405
    assert "error" in client.put("/v1/jobs").get_json()


@pytest.mark.parametrize("path", ["/v1/asr", "/v1/asr/sentence"])
def test_sync_endpoints_answer_504_with_the_job_id_when_no_worker_answers_in_time(
    tmp_path: Path, redis_server, path: str  # type: ignore[no-untyped-def]
) -> None:
    app = create_app(make_settings(tmp_path, redis_server.url, sync_wait_timeout_s=0.5))
    with app.test_client() as client:
        response = post(client, wav_bytes(1.0), path=path)
        assert_error(response, 504, "poll")
        job_id = response.get_json()["job_id"]
        job = client.get(f"/v1/jobs/{job_id}").get_json()
        assert job["status"] == "queued"  # not lost: a worker will still run it


@pytest.mark.parametrize(("path", "field"), [
    ("/v1/jobs", "audio"), ("/v1/asr", "audio"), ("/v1/asr/file", "audio"), ("/v1/asr/sentence", "audio"),
    ("/v1/audio/transcriptions", "file"),
])
def test_an_unknown_language_is_400_at_submission_naming_the_valid_codes(
    tmp_path: Path, redis_server, path: str, field: str  # type: ignore[no-untyped-def]
) -> None:
    settings = make_settings(tmp_path, redis_server.url, sync_wait_timeout_s=0.5)
    with create_app(settings).test_client() as client:
        assert_error(post(client, wav_bytes(1.0), path=path, field=field, language="xx"), 400, "'xx'", "zh", "yue")
        assert client.get("/v1/jobs").get_json()["total"] == 0
    assert stored_objects(settings) == []


@pytest.mark.parametrize(("overrides", "refused", "accepted"), [
    ({"whisper_model": "base"}, "tlh", ["yue", "haw", "en-US", "ZH", "auto"]),
    ({"whisper_model": "tiny.en"}, "zh", ["en", "en-GB"]),
    ({"engine": "funasr"}, "fr", ["zh", "en"]),
])
def test_each_engine_accepts_only_its_own_languages(
    tmp_path: Path, redis_server, overrides: dict[str, str], refused: str, accepted: list[str]  # type: ignore[no-untyped-def]
) -> None:
    with create_app(make_settings(tmp_path, redis_server.url, **overrides)).test_client() as client:
        engine = overrides.get("engine", "whisper")
        assert_error(post(client, wav_bytes(1.0), language=refused), 400, f"'{refused}'", engine)
        for language in accepted:
            response = post(client, wav_bytes(1.0), language=language)
            assert response.status_code == 202, (language, response.get_data(as_text=True))


def test_every_job_timestamp_carries_its_zone(client: FlaskClient) -> None:
    from datetime import datetime

    created = post(client, wav_bytes(1.0)).get_json()
    fetched = client.get(f"/v1/jobs/{created['id']}").get_json()
    listed = client.get("/v1/jobs").get_json()["jobs"][0]
    for body in (created, fetched, listed):
        stamp = datetime.fromisoformat(body["created_at"])
        assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0, body["created_at"]
    assert fetched["created_at"] == created["created_at"]


@pytest.mark.parametrize(("overrides", "refused", "accepted"), [
    ({"whisper_model": "tiny.en"}, "false", ["true", ""]),  # Whisper always writes numbers as digits
    ({"engine": "funasr", "funasr_asr_model": "paraformer-zh"}, "true", ["false", ""]),  # no ITN to turn on
    ({"engine": "funasr", "funasr_asr_model": "/models/SenseVoiceSmall"}, None, ["true", "false", ""]),
])
def test_use_itn_is_refused_where_the_engine_cannot_honour_it(
    tmp_path: Path, redis_server, overrides: dict[str, str], refused: str | None,  # type: ignore[no-untyped-def]
    accepted: list[str],
) -> None:
    with create_app(make_settings(tmp_path, redis_server.url, **overrides)).test_client() as client:
        if refused is not None:
            assert_error(post(client, wav_bytes(1.0), use_itn=refused), 422, "use_itn")
        for value in accepted:
            response = post(client, wav_bytes(1.0), use_itn=value)
            assert response.status_code == 202, (value, response.get_data(as_text=True))
            assert response.get_json()["options"]["use_itn"] == {"true": True, "false": False, "": None}[value]
        assert_error(post(client, wav_bytes(1.0), use_itn="maybe"), 400, "use_itn")


def test_the_configured_itn_default_applies_to_jobs_that_do_not_say(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, redis_server.url, engine="funasr", funasr_asr_model="SenseVoiceSmall",
                             use_itn=False)
    with create_app(settings).test_client() as client:
        assert post(client, wav_bytes(1.0)).get_json()["options"]["use_itn"] is False
        assert post(client, wav_bytes(1.0), use_itn="true").get_json()["options"]["use_itn"] is True
