"""Where state lives (data directory, database, Redis, audio and transcript storage) and how
long finished jobs keep their data there."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel


class StorageSettings(BaseModel):
    """The data directory, database, Redis, the storage backend, and retention."""

    data_dir: Path = Path("./data")
    database_url: str = ""
    redis_url: str = ""
    #: Port for the redis-server that `oddasr run` starts when `redis_url` is empty.
    embedded_redis_port: int = 6379
    storage_backend: Literal["local", "s3"] = "local"
    storage_local_dir: Path | None = None
    s3_bucket: str = "oddasr"
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_path_style: bool = True
    s3_create_bucket: bool = True

    #: Days a finished job keeps its audio and transcript; then they are deleted and the job
    #: row stays, with its status and `data_expired_at` (its transcript answers 410). 0: forever.
    retention_days: float = 30.0
    #: Days a finished job keeps its uploaded audio, when shorter than `retention_days`
    #: (unset: as long as the transcript; 0: forever).
    audio_retention_days: float | None = None

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.embedded_redis_port}/0"
