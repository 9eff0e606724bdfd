"""One behaviour suite for both storage backends: a local directory and a real S3 server."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import pytest

from shared.errors import StorageError
from shared.storage import Storage, StorageKeyNotFound
from shared.storage.local import LocalStorage
from shared.storage.s3 import S3Storage


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    server = request.getfixturevalue("s3_server")
    return S3Storage(bucket=f"t{os.getpid()}-{time.monotonic_ns()}"[:60], endpoint_url=server.endpoint_url,
                     access_key_id=server.access_key, secret_access_key=server.secret_key, create_bucket=True)


def test_streamed_round_trip_of_a_20_mb_file(storage: Storage, tmp_path: Path) -> None:
    data = os.urandom(20 * 1024 * 1024)
    assert storage.put_file("audio/big", io.BytesIO(data)) == len(data)
    target = tmp_path / "copy"
    storage.download_to("audio/big", target)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_bytes_exists_and_delete(storage: Storage) -> None:
    storage.put_bytes("transcripts/a.json", b'{"text": "hi"}')
    assert storage.exists("transcripts/a.json")
    assert storage.get_bytes("transcripts/a.json") == b'{"text": "hi"}'
    storage.put_bytes("transcripts/a.json", b"v2")
    assert storage.get_bytes("transcripts/a.json") == b"v2"
    storage.delete("transcripts/a.json")
    storage.delete("transcripts/a.json")
    assert not storage.exists("transcripts/a.json")


def test_missing_key_is_not_found(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(StorageKeyNotFound):
        storage.get_bytes("audio/none")
    with pytest.raises(StorageKeyNotFound):
        storage.download_to("audio/none", tmp_path / "x")


@pytest.mark.parametrize("key", ["../x", "/abs", "", "a/../b", "a//b", "sp ace", "a/./b"])
def test_bad_keys_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.put_bytes(key, b"x")


def test_ping_ok(storage: Storage) -> None:
    storage.ping()


def test_s3_dead_endpoint_fails_fast() -> None:
    from tests.support.servers import free_port

    storage = S3Storage(bucket="b", endpoint_url=f"http://127.0.0.1:{free_port()}", access_key_id="a",
                        secret_access_key="b", connect_timeout_s=1, max_attempts=1)
    started_s = time.monotonic()
    with pytest.raises(StorageError):
        storage.ping()
    with pytest.raises(StorageError):
        storage.put_bytes("k", b"x")
    assert time.monotonic() - started_s < 15


def test_local_missing_root_fails_ping(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "gone")
    (tmp_path / "gone").rmdir()  # the volume was unmounted or removed under the service
    with pytest.raises(StorageError):
        storage.ping()
