"""Storage in a local directory (the default, and a shared volume in containers)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from shared.errors import StorageError
from shared.storage.base import StorageKeyNotFound, validate_key

COPY_CHUNK_BYTES = 1024 * 1024


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put_file(self, key: str, fileobj: BinaryIO) -> int:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        # Write beside the target and rename: a reader sees the old object or the whole new one.
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := fileobj.read(COPY_CHUNK_BYTES):
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_name, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise StorageError(f"cannot write {key} to local storage: {exc}") from exc
        return written

    def put_bytes(self, key: str, data: bytes) -> None:
        import io

        self.put_file(key, io.BytesIO(data))

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise StorageKeyNotFound(f"{key} is not in storage") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key} from local storage: {exc}") from exc

    def download_to(self, key: str, path: Path) -> None:
        try:
            shutil.copyfile(self._path(key), path)
        except FileNotFoundError as exc:
            raise StorageKeyNotFound(f"{key} is not in storage") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key} from local storage: {exc}") from exc

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def ping(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"local storage {self.root} is not writable")
