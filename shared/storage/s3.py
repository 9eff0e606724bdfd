"""Storage in an S3-compatible bucket (AWS, MinIO, SeaweedFS); the only module importing boto3.

Every botocore error is translated here, with the cause kept: a missing object becomes
StorageKeyNotFound (a 404), everything else StorageError (transient: workers retry it).
Timeouts and retries are short on purpose: with botocore's defaults a dead endpoint holds a
request for minutes, which turns a storage outage into hung API threads.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NoReturn

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import StorageError
from shared.storage.base import StorageKeyNotFound, StoredObject, validate_key

logger = logging.getLogger(__name__)

#: Error codes S3 servers use for "no such object" (HEAD answers have no body, only "404").
_MISSING_OBJECT_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_MISSING_BUCKET_CODES = frozenset({"404", "NoSuchBucket", "NotFound"})

#: Uploads above this go multipart; each part is held in memory while it is sent, so
#: part size x concurrency bounds the memory one upload takes (8 MiB x 4 = 32 MiB).
MULTIPART_THRESHOLD_BYTES = 8 * 1024 * 1024
MULTIPART_CHUNK_BYTES = 8 * 1024 * 1024
TRANSFER_CONCURRENCY = 4


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


class S3Storage:
    """Objects in one bucket; keys are used as they are (no prefix)."""

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str = "",
        region: str = "us-east-1",
        access_key_id: str = "",
        secret_access_key: str = "",
        path_style: bool = True,
        create_bucket: bool = False,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 30.0,
        max_attempts: int = 3,
        ping_timeout_s: float = 3.0,
    ) -> None:
        """Build the clients; with `create_bucket`, make the bucket now if it is missing.

        `max_attempts` counts every try of one request, the first included; `read_timeout_s` is
        the longest silence between two socket reads, not a limit on a whole transfer. Empty
        credentials fall through to boto3's own chain (instance role, ~/.aws), which is what a
        deployment on AWS wants; empty `endpoint_url` means AWS itself.
        """
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        # A session per instance: boto3's default session is not safe to share across threads.
        session = boto3.session.Session(
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            region_name=region or None,
        )
        addressing = {"addressing_style": "path" if path_style else "virtual"}

        def client(connect_s: float, read_s: float, attempts: int):  # type: ignore[no-untyped-def]
            # total_max_attempts counts the first try; botocore's "max_attempts" does not.
            config = Config(signature_version="s3v4", s3=addressing, connect_timeout=connect_s, read_timeout=read_s,
                            retries={"total_max_attempts": attempts, "mode": "standard"})
            return session.client("s3", endpoint_url=self.endpoint_url, config=config)

        self._client = client(connect_timeout_s, read_timeout_s, max_attempts)
        # The health check must answer in seconds even when the endpoint accepts the
        # connection and then hangs: one attempt, and a read timeout as short as the connect one.
        self._ping_client = client(ping_timeout_s, ping_timeout_s, 1)
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD_BYTES,
            multipart_chunksize=MULTIPART_CHUNK_BYTES,
            max_concurrency=TRANSFER_CONCURRENCY,
        )
        if create_bucket:
            self._ensure_bucket()

    def _ensure_bucket(self) -> None:
        try:
            self._ping_client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in _MISSING_BUCKET_CODES:
                raise StorageError(f"cannot use S3 bucket {self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach the S3 endpoint {self.endpoint_url or 'AWS'}: {exc}") from exc
        logger.info("creating S3 bucket %s", self.bucket)
        try:
            self._client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            # Another process (a second API replica) may have created it in between.
            if _error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise StorageError(f"cannot create S3 bucket {self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot create S3 bucket {self.bucket}: {exc}") from exc

    def _raise(self, key: str, action: str, exc: BotoCoreError | ClientError) -> NoReturn:
        """Re-raise a botocore error as ours, keeping it as the cause."""
        if _error_code(exc) in _MISSING_OBJECT_CODES:
            raise StorageKeyNotFound(f"{key} is not in storage") from exc
        raise StorageError(f"S3 {action} of {key} in bucket {self.bucket} failed: {exc}") from exc

    def put_file(self, key: str, fileobj: BinaryIO) -> int:
        validate_key(key)
        reader = _CountingReader(fileobj)
        try:
            # An S3 object appears only when its upload (multipart included) completes, and
            # s3transfer aborts a failed multipart upload: readers never see half an object.
            self._client.upload_fileobj(reader, self.bucket, key, Config=self._transfer)
        except (BotoCoreError, ClientError) as exc:
            self._raise(key, "upload", exc)
        logger.debug("stored %s in bucket %s (%d bytes)", key, self.bucket, reader.read_bytes)
        return reader.read_bytes

    def put_bytes(self, key: str, data: bytes) -> None:
        validate_key(key)
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (BotoCoreError, ClientError) as exc:
            self._raise(key, "put", exc)

    def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            with response["Body"] as body:
                return bytes(body.read())
        except (BotoCoreError, ClientError) as exc:
            self._raise(key, "get", exc)

    def open_read(self, key: str) -> tuple[BinaryIO, int]:
        validate_key(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            self._raise(key, "get", exc)
        return response["Body"], int(response["ContentLength"])

    def size_bytes(self, key: str) -> int:
        validate_key(key)
        try:
            return int(self._client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except (BotoCoreError, ClientError) as exc:
            self._raise(key, "head", exc)

    def open_read_range(self, key: str, first_byte: int, end_byte: int) -> BinaryIO:
        validate_key(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key,
                                               Range=f"bytes={first_byte}-{end_byte - 1}")
        except (BotoCoreError, ClientError) as exc:
            self._raise(key, "get", exc)
        return response["Body"]

    def download_to(self, key: str, path: Path) -> None:
        validate_key(key)
        try:
            # s3transfer writes to a temp name beside `path` and renames it when complete.
            self._client.download_file(self.bucket, key, str(path), Config=self._transfer)
        except (BotoCoreError, ClientError) as exc:
            self._raise(key, "download", exc)
        except OSError as exc:
            raise StorageError(f"cannot write {key} to {path}: {exc}") from exc

    def delete(self, key: str) -> None:
        validate_key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            if _error_code(exc) in _MISSING_OBJECT_CODES:
                return  # some servers answer 404 where S3 answers 204; both mean "gone"
            self._raise(key, "delete", exc)

    def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            if _error_code(exc) in _MISSING_OBJECT_CODES:
                return False
            self._raise(key, "head", exc)
        return True

    def list_keys(self, prefix: str) -> Iterator[StoredObject]:
        validate_key(prefix)
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                               Prefix=f"{prefix}/"):
                for item in page.get("Contents", []):
                    yield StoredObject(str(item["Key"]), item["LastModified"].timestamp())
        except (BotoCoreError, ClientError) as exc:
            self._raise(prefix, "list", exc)

    def ping(self) -> None:
        try:
            self._ping_client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(
                f"S3 bucket {self.bucket} at {self.endpoint_url or 'AWS'} is not usable: {exc}"
            ) from exc


class _CountingReader(io.RawIOBase):
    """Counts the bytes read, so put_file can report the stored size without a HEAD.

    It reports itself not seekable on purpose: s3transfer then reads the stream exactly once,
    part by part (a seekable stream may be read twice, which would double the count). It also
    fills each read completely, because s3transfer takes a short read as a short part, and S3
    refuses multipart parts under 5 MiB except the last (network streams do read short).
    """

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data = self._inner.read()
        else:
            chunks: list[bytes] = []
            wanted_bytes = size
            while wanted_bytes > 0:
                chunk = self._inner.read(wanted_bytes)
                if not chunk:
                    break
                chunks.append(chunk)
                wanted_bytes -= len(chunk)
            data = b"".join(chunks)
        self.read_bytes += len(data)
        return data
