"""The real-server fixtures themselves: the other suites trust them to start, stop and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from tests.support.servers import PostgresServer, RedisServer, S3Server, run_redis


def test_redis_stops_and_restarts_on_the_same_port(tmp_path: Path) -> None:
    with run_redis(tmp_path) as server:
        client = redis.Redis.from_url(server.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        client.set("k", "v")
        port = server.port
        server.stop()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        server.start()
        assert server.port == port
        assert client.ping()
        assert client.get("k") is None  # no persistence: a restart is a clean slate
        client.close()
    assert server.process is None


def test_session_redis_answers(redis_server: RedisServer) -> None:
    assert redis.Redis.from_url(redis_server.url).ping()


@pytest.mark.postgres
def test_postgres_answers_select_1_through_sqlalchemy(postgres_server: PostgresServer) -> None:
    assert postgres_server.url.startswith("postgresql+psycopg://")
    engine = sa.create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == "oddasr_test"
    finally:
        engine.dispose()


@pytest.mark.s3
def test_seaweedfs_listens_on_loopback_only(s3_server: S3Server) -> None:
    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    ports = set(s3_server.ports.values())
    for line in listening:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) in ports:  # 0A: LISTEN
            assert address == "0100007F", f"port {int(port_hex, 16)} listens beyond loopback"


def test_servers_die_with_a_killed_test_process(tmp_path: Path) -> None:
    """Even a SIGKILLed pytest (no teardown, no atexit) leaves no redis-server behind."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from tests.support.servers import run_redis
        server = run_redis(Path({str(tmp_path)!r}))
        print(server.process.pid, flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[1])
    try:
        assert child.stdout is not None
        server_pid = int(child.stdout.readline())
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        deadline_s = time.monotonic() + 10
        while _is_running(server_pid) and time.monotonic() < deadline_s:
            time.sleep(0.05)
        assert not _is_running(server_pid)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting for its (dead) parent's reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
