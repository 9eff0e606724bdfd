"""Storage backends: a local directory (default) or an S3-compatible bucket.

Callers depend on the `Storage` protocol and get an instance from `make_storage`; boto3 is
imported only when the S3 backend is chosen, so a local-only deployment never loads it.
"""

from __future__ import annotations

from shared.config import Settings
from shared.errors import StorageError
from shared.storage.base import Storage, StorageKeyNotFound, StoredObject, validate_key


def make_storage(settings: Settings) -> Storage:
    """The backend `settings.storage_backend` names, configured from the same settings."""
    if settings.storage_backend == "s3":
        from shared.storage.s3 import S3Storage

        return S3Storage(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            path_style=settings.s3_path_style,
            create_bucket=settings.s3_create_bucket,
        )
    from shared.storage.local import LocalStorage

    if settings.storage_local_dir is None:  # Settings fills it from data_dir; defensive only
        raise StorageError("storage_local_dir is not set")
    return LocalStorage(settings.storage_local_dir)


__all__ = ["Storage", "StorageError", "StorageKeyNotFound", "StoredObject", "make_storage", "validate_key"]
