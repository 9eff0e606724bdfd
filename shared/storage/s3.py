"""Storage in an S3-compatible bucket; the only module that imports boto3."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import StorageError
from shared.storage.base import StorageKeyNotFound, validate_key

logger = logging.getLogger(__name__)

_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
MULTIPART_THRESHOLD_BYTES = 16 * 1024 * 1024


class S3Storage:
    def __init__(
        self, *, bucket: str, endpoint_url: str = "", region: str = "us-east-1", access_key_id: str = "",
        secret_access_key: str = "", path_style: bool = True, create_bucket: bool = False,
        connect_timeout_s: float = 3.0, read_timeout_s: float = 60.0, max_attempts: int = 3,
    ) -> None:
        self.bucket = bucket
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if path_style else "virtual"},
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"max_attempts": max_attempts, "mode": "standard"},
        )
        self._client = boto3.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region,
            aws_access_key_id=access_key_id or None, aws_secret_access_key=secret_access_key or None,
            config=config,
        )
        self._transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD_BYTES,
                                        multipart_chunksize=MULTIPART_THRESHOLD_BYTES)
        if create_bucket:
            self._ensure_bucket()

    def _ensure_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _MISSING_CODES | {"NoSuchBucket"}:
                raise StorageError(f"cannot reach bucket {self.bucket}: {exc}") from exc
            logger.info("creating bucket %s", self.bucket)
            try:
                self._client.create_bucket(Bucket=self.bucket)
            except ClientError as create_exc:
                raise StorageError(f"cannot create bucket {self.bucket}: {create_exc}") from create_exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach the S3 endpoint: {exc}") from exc

    def _translate(self, key: str, exc: Exception) -> Exception:
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_CODES:
                return StorageKeyNotFound(f"{key} is not in storage")
        return StorageError(f"S3 operation on {key} failed: {exc}")

    def put_file(self, key: str, fileobj: BinaryIO) -> int:
        validate_key(key)
        counter = _CountingReader(fileobj)
        try:
            # S3 objects appear whole on completion (multipart included): atomic for readers.
            self._client.upload_fileobj(counter, self.bucket, key, Config=self._transfer)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(key, exc) from exc
        return counter.bytes_read

    def put_bytes(self, key: str, data: bytes) -> None:
        validate_key(key)
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(key, exc) from exc

    def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(key, exc) from exc

    def download_to(self, key: str, path: Path) -> None:
        validate_key(key)
        try:
            self._client.download_file(self.bucket, key, str(path), Config=self._transfer)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(key, exc) from exc

    def delete(self, key: str) -> None:
        validate_key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            translated = self._translate(key, exc)
            if not isinstance(translated, StorageKeyNotFound):
                raise translated from exc

    def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            if isinstance(self._translate(key, exc), StorageKeyNotFound):
                return False
            raise self._translate(key, exc) from exc
        return True

    def ping(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 bucket {self.bucket} is not reachable: {exc}") from exc


class _CountingReader(io.RawIOBase):
    """Counts the bytes boto3 reads, so put_file can report the stored size."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self.bytes_read += len(data)
        return data
