"""Errors on the OpenAI-compatible routes reach users of OpenAI's own SDK.

The `openai` package is driven in-process against the Flask app (httpx's WSGI transport): the
SDK turns an error answer into an exception whose text is `error.message`, so a flat
`{"error": "..."}` would leave the user with "Error code: 400" and nothing else.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest

from api.app import create_app
from tests.test_api_validation import make_settings, wav_bytes


def sdk_client(tmp_path: Path, redis_url: str, **overrides: object) -> openai.OpenAI:
    app = create_app(make_settings(tmp_path, redis_url, **overrides))
    transport = httpx2.WSGITransport(app=app)
    return openai.OpenAI(base_url="http://127.0.0.1/v1", api_key="not-a-key", max_retries=0,
                         http_client=httpx2.Client(transport=transport, base_url="http://127.0.0.1/v1"))


@pytest.fixture
def client(tmp_path: Path, redis_server) -> Iterator[openai.OpenAI]:  # type: ignore[no-untyped-def]
    yield sdk_client(tmp_path, redis_server.url)


def transcribe(client: openai.OpenAI, audio: bytes = b"", **fields: object) -> object:
    return client.audio.transcriptions.create(file=("a.wav", io.BytesIO(audio or wav_bytes(1.0))),
                                              **{"model": "whisper-1", **fields})


def test_unknown_model_names_the_model_and_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        transcribe(client, model="gpt-4o-transcribe-nope")
    assert "unknown model 'gpt-4o-transcribe-nope'" in caught.value.message
    assert caught.value.param == "model"
    assert caught.value.type == "invalid_request_error"


def test_unknown_response_format_names_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        transcribe(client, response_format="docx")
    assert "unknown response_format 'docx'" in caught.value.message
    assert caught.value.param == "response_format"


def test_too_large_upload_message_reaches_the_sdk(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        transcribe(client, audio=b"\0" * (3 * 1024 * 1024))
    assert caught.value.status_code == 413
    assert "larger than the limit" in caught.value.message


def test_a_missing_key_is_an_authentication_error_with_the_reason(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    client = sdk_client(tmp_path, redis_server.url, auth_mode="required")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    assert caught.value.code == "invalid_api_key"
    assert "the API key is not valid" in caught.value.message
    assert caught.value.body == {"message": caught.value.body["message"], "type": "invalid_request_error",
                                 "param": None, "code": "invalid_api_key"}


def test_other_routes_keep_oddasr_flat_errors(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    app = create_app(make_settings(tmp_path, redis_server.url))
    with app.test_client() as test_client:
        answer = test_client.post("/v1/jobs", data={}, content_type="multipart/form-data")
    assert answer.status_code == 400 and isinstance(answer.get_json()["error"], str)
