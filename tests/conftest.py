"""Session-wide real servers and generated speech, shared by the test modules."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.support.servers import (
    PostgresServer,
    RedisServer,
    S3Server,
    ServerUnavailable,
    run_postgres,
    run_redis,
    run_seaweedfs,
)

# Assembled model files (Whisper base) are reused across runs instead of rebuilt per test.
os.environ.setdefault("ODDASR_TEST_MODEL_CACHE", str(Path.home() / ".cache" / "oddasr-test-models"))

ServerT = TypeVar("ServerT", RedisServer, PostgresServer, S3Server)


def _started(start: Callable[[Path], ServerT], directory: Path) -> Iterator[ServerT]:
    """Start a real server for the session. Missing binaries fail the run, never skip it:
    `make test` installs them, so a skip would only hide a broken install step."""
    try:
        server = start(directory)
    except ServerUnavailable as exc:
        pytest.fail(f"{exc} (make test installs it: scripts/install-system-packages.sh)")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from _started(run_redis, tmp_path_factory.mktemp("redis"))


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for one module alone: its tests stop, freeze or restart it, which the
    session's shared server must never see."""
    yield from _started(run_redis, tmp_path_factory.mktemp("redis-own"))


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    yield from _started(run_postgres, tmp_path_factory.mktemp("postgres"))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    yield from _started(run_seaweedfs, tmp_path_factory.mktemp("seaweedfs"))


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    """Generated speech is cached between runs: espeak-ng output is deterministic."""
    directory = Path(os.environ.get("ODDASR_TEST_SPEECH_CACHE", Path.home() / ".cache" / "oddasr-test-speech"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="session")
def tiny_funasr_models() -> dict[str, Path]:
    """Tiny random SeacoParaformer, CT-Transformer, CAM++ and ParaformerStreaming directories
    (text is noise)."""
    from tests.support.tiny_funasr import build_tiny_models

    return build_tiny_models(Path(os.environ["ODDASR_TEST_MODEL_CACHE"]) / "funasr-tiny")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind: a SQLite file, or the session's PostgreSQL with its
    schema dropped and made again (whatever an earlier test left)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    from shared.db.session import make_engine

    server = request.getfixturevalue("postgres_server")
    engine = make_engine(server.url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    return server.url
