"""Storage in a local directory (the default, and a shared volume in containers).

Writes go to a temp file beside the target, are fsynced and then renamed over it: rename is
atomic within one filesystem, so a worker reading `audio/<id>` sees the whole upload or
nothing, even when the API process dies halfway through a write.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from shared.errors import StorageError
from shared.storage.base import StorageKeyNotFound, StoredObject, validate_key

logger = logging.getLogger(__name__)

COPY_CHUNK_BYTES = 1024 * 1024
#: Temp files start with this; they are never valid results of a finished write.
_TEMP_PREFIX = ".incoming-"


class LocalStorage:
    """Objects as files under `root`; the key is the relative path."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create local storage directory {self.root}: {exc}") from exc

    def _path(self, key: str) -> Path:
        """The file for `key`, refusing anything that resolves outside the root.

        validate_key already refuses `..`; resolving as well catches a symlink inside the root
        that points elsewhere, so the root is a real boundary and not just a naming rule.
        """
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise ValueError(f"invalid storage key {key!r}: it resolves outside the storage root")
        return path

    def _write_atomically(self, target: Path, fileobj: BinaryIO, what: str) -> int:
        """Copy `fileobj` into a temp file beside `target`, fsync it and rename it over `target`."""
        written_bytes = 0
        tmp_name: str | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=_TEMP_PREFIX)
            with os.fdopen(fd, "wb") as out:
                while chunk := fileobj.read(COPY_CHUNK_BYTES):
                    out.write(chunk)
                    written_bytes += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_name, target)
            tmp_name = None
            _fsync_directory(target.parent)
        except OSError as exc:
            raise StorageError(f"cannot write {what}: {exc}") from exc
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
        return written_bytes

    def put_file(self, key: str, fileobj: BinaryIO) -> int:
        written_bytes = self._write_atomically(self._path(key), fileobj, f"{key} to local storage")
        logger.debug("stored %s (%d bytes)", key, written_bytes)
        return written_bytes

    def put_bytes(self, key: str, data: bytes) -> None:
        self.put_file(key, io.BytesIO(data))

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise StorageKeyNotFound(f"{key} is not in storage") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key} from local storage: {exc}") from exc

    def open_read(self, key: str) -> tuple[BinaryIO, int]:
        path = self._path(key)
        try:
            stream = path.open("rb")
            return stream, os.fstat(stream.fileno()).st_size
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise StorageKeyNotFound(f"{key} is not in storage") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key} from local storage: {exc}") from exc

    def size_bytes(self, key: str) -> int:
        path = self._path(key)
        try:
            if not path.is_file():
                raise StorageKeyNotFound(f"{key} is not in storage")
            return path.stat().st_size
        except OSError as exc:
            raise StorageError(f"cannot stat {key} in local storage: {exc}") from exc

    def open_read_range(self, key: str, first_byte: int, end_byte: int) -> BinaryIO:
        stream, _ = self.open_read(key)
        stream.seek(first_byte)
        return _LimitedReader(stream, end_byte - first_byte)

    def download_to(self, key: str, path: Path) -> None:
        source = self._path(key)
        try:
            with source.open("rb") as src:
                # Atomic on the destination too: a crash never leaves a truncated audio file
                # that a decoder would read as a shorter recording.
                self._write_atomically(Path(path).absolute(), src, f"{key} to {path}")
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise StorageKeyNotFound(f"{key} is not in storage") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key} from local storage: {exc}") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {key} from local storage: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> Iterator[StoredObject]:
        folder = self._path(prefix)
        try:
            for directory, _dirs, files in os.walk(folder):
                for name in files:
                    if name.startswith(_TEMP_PREFIX):
                        continue  # a write in progress, not an object
                    path = Path(directory) / name
                    with contextlib.suppress(FileNotFoundError):  # deleted while we walk
                        yield StoredObject(path.relative_to(self.root).as_posix(), path.stat().st_mtime)
        except OSError as exc:
            raise StorageError(f"cannot list {prefix}/ in local storage: {exc}") from exc

    def ping(self) -> None:
        """Create and remove a probe file: the only honest test of a writable volume.

        `os.access` says yes to root on a read-only bind mount's permission bits and knows
        nothing of a full or read-only filesystem; a real write does.
        """
        try:
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=".ping-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StorageError(f"local storage {self.root} is not writable: {exc}") from exc


class _LimitedReader(io.RawIOBase):
    """The first `limit_bytes` of a file, then end of stream; closing it closes the file."""

    def __init__(self, inner: BinaryIO, limit_bytes: int) -> None:
        super().__init__()
        self._inner = inner
        self._left_bytes = max(0, limit_bytes)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        wanted_bytes = self._left_bytes if size is None or size < 0 else min(size, self._left_bytes)
        data = self._inner.read(wanted_bytes) if wanted_bytes else b""
        self._left_bytes -= len(data)
        return data

    def close(self) -> None:
        self._inner.close()
        super().close()


def _fsync_directory(directory: Path) -> None:
    """Persist a rename: without it a power loss may forget the new directory entry."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems (network mounts) refuse fsync on directories
        logger.debug("fsync of directory %s failed: %s", directory, exc)
    finally:
        os.close(fd)


__all__ = ["LocalStorage"]
