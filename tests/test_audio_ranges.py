"""`GET /v1/jobs/{id}/audio` serves byte ranges, so browsers and players can seek in a recording."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from api.app import create_app
from tests.test_api_validation import make_settings, post, wav_bytes


@pytest.fixture
def client(tmp_path: Path, redis_server) -> Iterator[FlaskClient]:  # type: ignore[no-untyped-def]
    app = create_app(make_settings(tmp_path, redis_server.url))
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture
def stored(client: FlaskClient) -> tuple[str, bytes]:
    audio = wav_bytes(2.0)
    created = post(client, audio)
    assert created.status_code == 202, created.get_data(as_text=True)
    return f"/v1/jobs/{created.get_json()['id']}/audio", audio


def test_a_whole_read_says_ranges_are_accepted(client: FlaskClient, stored: tuple[str, bytes]) -> None:
    path, audio = stored
    whole = client.get(path)
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.data == audio


@pytest.mark.parametrize(("header", "first_byte", "end_byte"), [
    ("bytes=0-99", 0, 100), ("bytes=1000-", 1000, None), ("bytes=-500", -500, None), ("bytes=44-44", 44, 45)])
def test_a_range_is_206_with_only_those_bytes(client: FlaskClient, stored: tuple[str, bytes], header: str,
                                              first_byte: int, end_byte: int | None) -> None:
    path, audio = stored
    part = client.get(path, headers={"Range": header})
    expected = audio[first_byte:end_byte]
    assert part.status_code == 206, part.get_data(as_text=True)
    assert part.data == expected
    assert part.headers["Content-Length"] == str(len(expected))
    start = first_byte % len(audio)
    assert part.headers["Content-Range"] == f"bytes {start}-{start + len(expected) - 1}/{len(audio)}"


def test_a_range_past_the_end_is_416_naming_the_size(client: FlaskClient, stored: tuple[str, bytes]) -> None:
    path, audio = stored
    refused = client.get(path, headers={"Range": f"bytes={len(audio) + 10}-"})
    assert refused.status_code == 416
    assert refused.headers["Content-Range"] == f"bytes */{len(audio)}"


def test_several_ranges_at_once_are_answered_whole(client: FlaskClient, stored: tuple[str, bytes]) -> None:
    path, audio = stored
    whole = client.get(path, headers={"Range": "bytes=0-9,20-29"})
    assert whole.status_code == 200 and whole.data == audio


def test_audio_the_row_names_but_storage_lacks_is_gone_not_missing(client: FlaskClient, stored: tuple[str, bytes],
                                                                 tmp_path: Path) -> None:
    """A live session whose stream worker was killed before storing its recording has an
    audio key and no object: the job exists, its audio is gone (410), not "no such job" (404)."""
    path, _ = stored
    objects = [p for p in (tmp_path / "data" / "storage").rglob("*") if p.is_file() and "audio" in p.parts]
    assert objects, "the upload's stored audio"
    for stored_object in objects:
        stored_object.unlink()
    gone = client.get(path)
    assert gone.status_code == 410 and "never stored" in gone.get_json()["error"], gone.get_data(as_text=True)
