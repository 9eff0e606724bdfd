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

#: Fixtures that start real servers: a test that uses one, directly or through another
#: fixture (a module's stack needs `redis_server`), is an integration test.
SERVER_FIXTURES = frozenset({"redis_server", "own_redis", "postgres_server", "s3_server"})


#: Units that load real models (Whisper, FunASR, Moonshine, fsmn-vad with torch, CAM++): seconds
#: to minutes each, measured with `--durations`. `make test` runs them, `make test-fast` does not.
SLOW_MODULES = frozenset({
    "test_diarization", "test_engines", "test_fsmn_vad_lite", "test_funasr_engine", "test_funasr_stream",
    "test_model_admin", "test_moonshine_engine", "test_worker_footprint",
})
#: Single units over about 2 s (a child process, a model, a deadline waited out), by name.
SLOW_TESTS = frozenset({
    "test_keys_cli_prints_the_key_alone_on_stdout_and_revokes",
    "test_cli_refuses_to_serve_an_open_api_publicly",
    "test_recording_never_raises_when_redis_is_away",
    "test_the_document_is_valid_openapi_3_1",
    "test_stream_mic_without_a_microphone_says_so_before_connecting",
    "test_only_the_first_bytes_of_an_answer_are_read",
    "test_the_unused_keys_are_logged_once_after_logging_is_configured",
    "test_redis_stops_and_restarts_on_the_same_port",
    "test_the_funasr_engine_embeds_with_its_campplus_model",
})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that starts a server `integration`, and the slow units `slow`, so that
    `make test-fast` (`-m "not integration and not slow"`) runs only quick tests that need no
    process of their own. A module that starts processes some other way says so itself
    (`pytestmark = pytest.mark.integration`)."""
    for item in items:
        if item.module is not None and (item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES
                                        or getattr(item, "originalname", item.name) in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
        params = getattr(getattr(item, "callspec", None), "params", {})
        starts_a_server = (
            SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            or params.get("database_url") == "postgres"  # asked for with getfixturevalue
            or item.get_closest_marker("s3") is not None
            or item.get_closest_marker("postgres") is not None
        )
        if starts_a_server and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)


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
