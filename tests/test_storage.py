"""One behaviour suite for both storage backends: a local directory and a real S3 server."""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import os
import pwd
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import Settings
from shared.errors import NotFoundError, StorageError
from shared.storage import Storage, StorageKeyNotFound, make_storage
from shared.storage.local import LocalStorage
from shared.storage.s3 import S3Storage
from tests.support.servers import S3Server, free_port

BIG_SIZE_BYTES = 20 * 1024 * 1024
_bucket_numbers = itertools.count()


def _s3_storage(server: S3Server, **overrides: object) -> S3Storage:
    """A fresh bucket, so tests in other modules never see this suite's objects."""
    options: dict[str, object] = {
        "bucket": f"t-{os.getpid()}-{next(_bucket_numbers)}", "endpoint_url": server.endpoint_url,
        "access_key_id": server.access_key, "secret_access_key": server.secret_key, "create_bucket": True,
    }
    options.update(overrides)
    return S3Storage(**options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def s3_storage(s3_server: S3Server) -> S3Storage:
    """One bucket for the suite: creating a bucket costs SeaweedFS about half a second."""
    return _s3_storage(s3_server)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    return request.getfixturevalue("s3_storage")


class _ShortReads(io.RawIOBase):
    """A stream that returns at most 64 KiB per read, like a socket does."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._inner.read(min(size if size is not None and size >= 0 else 1 << 30, 64 * 1024))


def test_streamed_round_trip_of_a_20_mb_file(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(BIG_SIZE_BYTES))
    with source.open("rb") as fileobj:
        assert storage.put_file("audio/big", fileobj) == BIG_SIZE_BYTES
    target = tmp_path / "copy.bin"
    storage.download_to("audio/big", target)
    assert target.stat().st_size == BIG_SIZE_BYTES
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    stream, size_bytes = storage.open_read("audio/big")  # what the API hands to a client
    digest = hashlib.sha256()
    with stream:
        while piece := stream.read(256 * 1024):
            digest.update(piece)
    assert size_bytes == BIG_SIZE_BYTES and digest.digest() == hashlib.sha256(source.read_bytes()).digest()


def test_put_file_from_a_stream_with_short_reads(storage: Storage) -> None:
    """Multipart S3 uploads need full parts: a socket-like stream must not break them."""
    data = os.urandom(BIG_SIZE_BYTES // 2)
    assert storage.put_file("audio/stream", _ShortReads(data)) == len(data)  # type: ignore[arg-type]
    assert hashlib.sha256(storage.get_bytes("audio/stream")).digest() == hashlib.sha256(data).digest()


def test_bytes_exists_overwrite_and_delete(storage: Storage) -> None:
    assert not storage.exists("transcripts/a.json")
    storage.put_bytes("transcripts/a.json", b'{"text": "hi"}')
    assert storage.exists("transcripts/a.json")
    assert storage.get_bytes("transcripts/a.json") == b'{"text": "hi"}'
    storage.put_bytes("transcripts/a.json", b"v2")
    assert storage.get_bytes("transcripts/a.json") == b"v2"
    storage.put_bytes("empty", b"")
    assert storage.get_bytes("empty") == b""
    storage.delete("transcripts/a.json")
    storage.delete("transcripts/a.json")  # deletes are retried: the second one is fine
    assert not storage.exists("transcripts/a.json")


def test_list_keys_finds_every_object_under_a_folder_only(storage: Storage) -> None:
    """Retention's sweep of `speakers/` finds orphans by listing; a folder is a whole segment."""
    prefix = f"list-{uuid.uuid4().hex}"
    keys = {f"{prefix}/a/0", f"{prefix}/a/1", f"{prefix}/b/0"}
    for key in keys:
        storage.put_bytes(key, b"x")
    storage.put_bytes(f"{prefix}-sibling/0", b"x")
    found = list(storage.list_keys(prefix))
    assert {obj.key for obj in found} == keys
    assert all(abs(obj.modified_at_s - time.time()) < 600 for obj in found)
    assert list(storage.list_keys(f"{prefix}/missing")) == []


def test_missing_key_is_not_found(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(StorageKeyNotFound) as caught:
        storage.get_bytes("audio/none")
    assert isinstance(caught.value, NotFoundError) and caught.value.http_status == 404
    with pytest.raises(StorageKeyNotFound):
        storage.download_to("audio/none", tmp_path / "x")
    with pytest.raises(StorageKeyNotFound):
        storage.open_read("audio/none")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("key", ["../x", "/abs", "", "a/../b", "a//b", "a/", "sp ace", "a/./b", "..", "ü", "a\\b",
                                 "x" * 1025])
def test_bad_keys_are_refused(storage: Storage, key: str, tmp_path: Path) -> None:
    for call in (lambda: storage.put_bytes(key, b"x"), lambda: storage.get_bytes(key),
                 lambda: storage.put_file(key, io.BytesIO(b"x")), lambda: storage.exists(key),
                 lambda: storage.delete(key), lambda: storage.download_to(key, tmp_path / "y")):
        with pytest.raises(ValueError, match="invalid storage key"):
            call()


def test_ping_of_a_usable_store_passes_and_leaves_nothing_behind(storage: Storage) -> None:
    """The health check pings on every probe: it must pass on a usable store, and what it
    writes to prove the store writable (the local probe file) must be gone again, or the
    probes would fill the volume and show up as objects."""
    prefix = f"ping-{uuid.uuid4().hex}"
    storage.put_bytes(f"{prefix}/neighbour", b"x")
    for _ in range(3):
        assert storage.ping() is None  # a store that cannot be used raises StorageError instead
    assert [found.key for found in storage.list_keys(prefix)] == [f"{prefix}/neighbour"]
    if isinstance(storage, LocalStorage):
        assert not list(storage.root.rglob(".ping-*")), "the probe file was left behind"


def test_make_storage_builds_each_backend(tmp_path: Path, s3_server: S3Server) -> None:
    local = make_storage(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalStorage) and local.root == (tmp_path / "storage").resolve()
    s3 = make_storage(Settings(
        storage_backend="s3", s3_bucket="made-by-factory", s3_endpoint_url=s3_server.endpoint_url,
        s3_access_key_id=s3_server.access_key, s3_secret_access_key=s3_server.secret_key,
    ))
    assert isinstance(s3, S3Storage)
    s3.ping()  # the factory created the bucket (s3_create_bucket defaults to true)
    assert isinstance(s3, Storage) and isinstance(local, Storage)


# --- failures --------------------------------------------------------------------------------


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """An endpoint that accepts TCP connections (the kernel does) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_s3_ping_of_a_dead_endpoint_fails_in_seconds() -> None:
    storage = S3Storage(bucket="b", endpoint_url=f"http://127.0.0.1:{free_port()}", access_key_id="a",
                        secret_access_key="b")
    started_s = time.monotonic()
    with pytest.raises(StorageError) as caught:
        storage.ping()
    with pytest.raises(StorageError):
        storage.put_bytes("k", b"x")
    # A refused connection is no timeout: even the ordinary client's three attempts and their
    # backoff end long before botocore's own 60 s connect timeout, which hanging here would mean.
    assert time.monotonic() - started_s < 30
    assert caught.value.__cause__ is not None  # the botocore error is kept for the logs


def test_s3_ping_of_a_hung_endpoint_fails_in_seconds(hung_endpoint: str) -> None:
    read_timeout_s = 30.0
    storage = S3Storage(bucket="b", endpoint_url=hung_endpoint, access_key_id="a", secret_access_key="b",
                        read_timeout_s=read_timeout_s, ping_timeout_s=1.0)
    started_s = time.monotonic()
    with pytest.raises(StorageError):
        storage.ping()
    # The ping has its own client: with the ordinary one it would wait out a read timeout per
    # attempt (3 x 30 s). A bound of one such timeout tells the two apart on any machine.
    assert time.monotonic() - started_s < read_timeout_s


def test_s3_dead_endpoint_at_construction_is_a_storage_error() -> None:
    with pytest.raises(StorageError):
        S3Storage(bucket="b", endpoint_url=f"http://127.0.0.1:{free_port()}", create_bucket=True,
                  access_key_id="a", secret_access_key="b")


def test_s3_wrong_credentials_are_a_storage_error(s3_server: S3Server) -> None:
    storage = _s3_storage(s3_server)
    wrong = S3Storage(bucket=storage.bucket, endpoint_url=s3_server.endpoint_url, access_key_id=s3_server.access_key,
                      secret_access_key="not-the-secret")
    with pytest.raises(StorageError) as caught:
        wrong.get_bytes("anything")
    assert not isinstance(caught.value, StorageKeyNotFound)


def test_local_ping_of_a_removed_root_fails(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "gone")
    (tmp_path / "gone").rmdir()  # the volume was unmounted or removed under the service
    with pytest.raises(StorageError):
        storage.ping()


def test_local_ping_of_an_unwritable_root_fails() -> None:
    """Root ignores permission bits, so as root the check runs in a forked child as `nobody`."""
    with tempfile.TemporaryDirectory(prefix="oddasr-ro-") as directory:
        storage = LocalStorage(Path(directory))
        os.chmod(directory, 0o555)
        pid = os.fork()
        if pid == 0:  # the child: no pytest machinery here, only an exit status
            code = 1
            try:
                if os.geteuid() == 0:
                    nobody = pwd.getpwnam("nobody")
                    os.setgroups([])
                    os.setgid(nobody.pw_gid)
                    os.setuid(nobody.pw_uid)
                storage.ping()
            except StorageError:
                code = 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3


def test_local_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    storage = LocalStorage(tmp_path / "store")
    (tmp_path / "store" / "link").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the storage root"):
        storage.put_bytes("link/escape", b"x")
    assert not (outside / "escape").exists()


def test_local_failed_write_leaves_no_object_and_no_temp_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    storage.put_bytes("audio/a", b"old")

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int | None = -1) -> bytes:
            raise OSError("client went away")

    with pytest.raises(StorageError):
        storage.put_file("audio/a", Broken())  # type: ignore[arg-type]
    assert storage.get_bytes("audio/a") == b"old"
    assert sorted(p.name for p in (tmp_path / "store" / "audio").iterdir()) == ["a"]


def test_ranged_reads_return_only_the_bytes_asked_for(storage: Storage) -> None:
    data = bytes(range(256)) * 40
    storage.put_bytes("ranges/a.bin", data)
    assert storage.size_bytes("ranges/a.bin") == len(data)
    for first_byte, end_byte in [(0, 1), (100, 5000), (len(data) - 7, len(data))]:
        with contextlib.closing(storage.open_read_range("ranges/a.bin", first_byte, end_byte)) as stream:
            assert stream.read() == data[first_byte:end_byte]
    with pytest.raises(StorageKeyNotFound):
        storage.size_bytes("ranges/missing.bin")
