"""Where state lives (data directory, database, Redis, audio and transcript storage) and how
long finished jobs keep their data there."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import NoDecode

from shared.config.lists import split_list


class StorageSettings(BaseModel):
    """The data directory, database, Redis, the storage backend, and retention."""

    data_dir: Path = Path("./data")
    database_url: str = ""
    redis_url: str = ""
    #: Port for the redis-server that `oddasr run` starts when `redis_url` is empty.
    embedded_redis_port: int = 6379
    #: Redis Sentinel, opt-in: the sentinels as `host:port` (comma-separated in the
    #: environment). When given, every Redis connection (Celery's broker through kombu's
    #: `sentinel://` transport, the relay, slots, presence, limits) asks them for the current
    #: master of `redis_sentinel_master`, and follows a failover. `redis_url` then only gives
    #: the database number, the password and TLS (`rediss://`) of the master; its host is unused.
    redis_sentinels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: The master's name as the sentinels know it (`sentinel monitor NAME ...`).
    redis_sentinel_master: str = ""
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

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _sentinel_list(cls, value: object) -> object:
        return split_list(value)

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or "/" in address:
                raise ValueError(f"redis_sentinels: {address!r} is not host:port (e.g. 10.0.0.5:26379)")
        return value

    @model_validator(mode="after")
    def _sentinel_master_named(self) -> StorageSettings:
        if self.redis_sentinels and not self.redis_sentinel_master:
            raise ValueError("redis_sentinels is set: redis_sentinel_master must name the master (e.g. mymaster)")
        return self

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """The sentinels as (host, port) pairs; empty without Sentinel."""
        pairs = []
        for address in self.redis_sentinels:
            host, _, port = address.rpartition(":")
            pairs.append((host.strip("[]"), int(port)))
        return pairs

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.embedded_redis_port}/0"
