"""The multi-host test bed: infra, two API hosts, two worker hosts, two stream hosts, a client.

Each host is a network namespace with its own address, its own `data_dir` and its own host
name, and starts its processes the way the README's multi-host deployment says: the same
`oddasr` subcommands and `ODDASR_*` settings an operator sets on each machine. Storage is S3
only: no host reads another's disk. Two hosts run on clocks two minutes off (libfaketime) for
the whole run, so every fault below also happens with disagreeing clocks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import redis
import requests

from tests.cluster import netns
from tests.support.servers import PostgresServer, RedisServer, S3Server, stop_process
from tests.support.skewed_clock import skewed_clock_env

logger = logging.getLogger(__name__)

ADDRESSES = {"infra": 10, "api1": 21, "api2": 22, "work1": 31, "work2": 32, "stream1": 41, "stream2": 42,
             "client": 50}
API_HOSTS = ("api1", "api2")
WORKER_HOSTS = ("work1", "work2")
STREAM_HOSTS = ("stream1", "stream2")
#: Hosts whose clock is off for the whole run: one ahead, one behind, and an API ahead.
CLOCK_OFFSETS_S = {"work2": 120, "stream2": -120, "api2": 120}
API_PORT = 9002
WS_PORT = 8101
REDIS_PORT = 6379
POSTGRES_PORT = 5432
#: A job's lease: the reconciler gives a silent running job to another worker after this.
STALE_JOB_AFTER_S = 8.0
REAPER_INTERVAL_S = 2.0
#: A queued job whose message no queue holds (Redis restarted empty) is sent again after this.
REQUEUE_QUEUED_AFTER_S = 15.0
READY_TIMEOUT_S = 240.0
#: `sitecustomize` for the skewed hosts' Python: a time.sleep that libfaketime does not break.
SKEWED_CLOCK_SHIM = Path(__file__).parent / "skewed_clock"


def _count(workers: object) -> int:
    """/readyz names the workers (auth off) or counts them (a caller without an admin key)."""
    return len(workers) if isinstance(workers, list) else int(workers or 0)  # type: ignore[arg-type]


def address(host: str) -> str:
    return f"{netns.SUBNET}.{ADDRESSES[host]}"


@dataclass
class Cluster:
    root: Path
    infra_dir: Path = field(init=False)
    redis_server: RedisServer | None = None
    postgres: PostgresServer | None = None
    s3: S3Server | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.infra_dir = self.root / "infra"

    # --- the network and the shared services ------------------------------------------------
    def build_network(self) -> None:
        netns.cleanup()
        netns.create_bridge()
        for host in ADDRESSES:
            netns.add_host(host, address(host))

    def start_infra(self) -> None:
        infra = address("infra")
        for name in ("redis", "postgres", "s3"):
            (self.infra_dir / name).mkdir(parents=True, exist_ok=True)
        with netns.on_host("infra"):
            self.redis_server = RedisServer(self.infra_dir / "redis", port=REDIS_PORT, bind_host=infra)
            self.redis_server.start()
            self.postgres = PostgresServer(self.infra_dir / "postgres", port=POSTGRES_PORT, bind_host=infra)
            self.postgres.start()
            self.s3 = S3Server(self.infra_dir / "s3", bind_host=infra)
            self.s3.start()

    def restart_infra(self, server: RedisServer | PostgresServer | S3Server, down_s: float = 0.0) -> None:
        """Stop a shared service and start it again on the same address and port."""
        server.stop()
        time.sleep(down_s)
        with netns.on_host("infra"):
            server.start()

    # --- the OddASR hosts -----------------------------------------------------------------
    def environment(self, host: str) -> dict[str, str]:
        """The settings an operator gives every OddASR machine, plus this host's own."""
        assert self.redis_server and self.postgres and self.s3
        data_dir = self.root / host / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        settings = {
            "REDIS_URL": self.redis_server.url,
            "DATABASE_URL": self.postgres.url,
            "STORAGE_BACKEND": "s3",
            "S3_ENDPOINT_URL": self.s3.endpoint_url,
            "S3_BUCKET": "oddasr-cluster",
            "S3_ACCESS_KEY_ID": self.s3.access_key,
            "S3_SECRET_ACCESS_KEY": self.s3.secret_key,
            "S3_REGION": self.s3.region,
            "DATA_DIR": str(data_dir),
            "WHISPER_MODEL": "tiny.en",
            "WHISPER_BEAM_SIZE": "1",
            "CPU_THREADS": "1",
            "STALE_JOB_AFTER_S": str(STALE_JOB_AFTER_S),
            "REAPER_INTERVAL_S": str(REAPER_INTERVAL_S),
            "REQUEUE_QUEUED_AFTER_S": str(REQUEUE_QUEUED_AFTER_S),
            "LOG_LEVEL": "INFO",
            "ENABLE_FLOWER": "false",
            "HOST": "0.0.0.0",
            "PORT": str(API_PORT),
            "WS_HOST": "0.0.0.0",
            "WS_PORT": str(WS_PORT),
            "FUNASR_WS_PORT": "0",
            "ALLOW_UNAUTHENTICATED_PUBLIC": "true",
            "STREAM_SESSIONS_PER_WORKER": "2",
            "STREAM_WORKER_TIMEOUT_S": "1.5",
            "STREAM_IDLE_TIMEOUT_S": "3",
            "STREAM_SLOT_WAIT_S": "5",
            "FILE_WORKER_CONCURRENCY": "1",
            "SENTENCE_WORKER_CONCURRENCY": "1",
        }
        env = {key: value for key, value in os.environ.items() if not key.startswith("ODDASR_")}
        env.update({f"ODDASR_{key}": value for key, value in settings.items()})
        if host in CLOCK_OFFSETS_S:
            env = skewed_clock_env(CLOCK_OFFSETS_S[host], env)
            env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
            env["PYTHONPATH"] = os.pathsep.join([str(SKEWED_CLOCK_SHIM), env.get("PYTHONPATH", "")])
        return env

    def spawn(self, host: str, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """`oddasr <args>` on `host` (under its clock offset, if it has one)."""
        log_dir = self.root / host / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "shared.cli.main", *args]
        with (log_dir / f"{name}.log").open("ab") as log, netns.on_host(host):
            process = subprocess.Popen(argv, env=self.environment(host), stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, preexec_fn=partial(netns.own_hostname, host))
        self.processes[f"{host}/{name}"] = process
        return process

    def start_host(self, host: str) -> None:
        if host in API_HOSTS:
            self.spawn(host, "api", ["api"])
        elif host in WORKER_HOSTS:
            self.spawn(host, "worker", ["worker", "--queues", "cpu,sentence", "--concurrency", "1"])
        elif host in STREAM_HOSTS:
            self.spawn(host, "stream-worker", ["stream-worker", "--processes", "1"])

    def start_oddasr(self) -> None:
        migrate = self.spawn("api1", "migrate", ["migrate"])
        if migrate.wait(timeout=120) != 0:
            raise RuntimeError(f"migrate failed:\n{self.log_tail('api1', 'migrate')}")
        for host in (*API_HOSTS, *WORKER_HOSTS, *STREAM_HOSTS):
            self.start_host(host)
        self.wait_ready()

    # --- views from outside ---------------------------------------------------------------
    def api_url(self, host: str = "api1") -> str:
        return f"http://{address(host)}:{API_PORT}"

    def ws_url(self, host: str = "api1") -> str:
        return f"ws://{address(host)}:{WS_PORT}/v1/asr"

    def redis(self) -> redis.Redis:
        assert self.redis_server
        return redis.Redis.from_url(self.redis_server.url, socket_timeout=5, socket_connect_timeout=2)

    def stream_slots(self) -> dict[str, dict]:
        from shared import redis_keys

        client = self.redis()
        try:
            return {k.decode(): json.loads(v) for k, v in client.hgetall(redis_keys.STREAM_SLOTS_HASH).items()}
        finally:
            client.close()

    def live_stream_hosts(self) -> set[str]:
        from shared.redis_clock import redis_now_s
        from shared.stream_slots import SLOT_HEARTBEAT_TTL_S

        client = self.redis()
        try:
            now_s = redis_now_s(client)
        finally:
            client.close()
        return {slot["host"] for slot in self.stream_slots().values()
                if now_s - float(slot["heartbeat_s"]) <= SLOT_HEARTBEAT_TTL_S}

    def served_queues(self, host: str = "api1") -> dict:
        return requests.get(f"{self.api_url(host)}/readyz", timeout=5).json().get("queues", {})

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Both APIs answer, both worker hosts serve cpu and sentence, both stream hosts beat."""
        deadline_s = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline_s:
            for name, process in self.processes.items():
                if process.poll() is not None and not name.endswith("/migrate"):
                    host, log = name.split("/")
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(host, log)}")
            try:
                queues = {host: self.served_queues(host) for host in API_HOSTS}
                workers = {q: _count(info.get("workers")) for q, info in queues["api1"].items()}
                last = (workers, self.live_stream_hosts())
                if (workers.get("cpu", 0) >= 2 and workers.get("sentence", 0) >= 2
                        and self.live_stream_hosts() == set(STREAM_HOSTS)):
                    return
            except (requests.RequestException, ValueError, redis.RedisError) as exc:
                last = exc
            time.sleep(1.0)
        raise TimeoutError(f"the cluster was not ready after {timeout_s} s: {last}")

    def log_tail(self, host: str, name: str, lines: int = 40) -> str:
        path = self.root / host / "logs" / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def kill_host(self, host: str) -> int:
        """SIGKILL every process of the host (a host lost with its machine); reaps ours."""
        import signal

        killed = netns.signal_host(host, signal.SIGKILL)
        for name, process in self.processes.items():
            if name.startswith(f"{host}/"):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
        return killed

    # --- the end --------------------------------------------------------------------------
    def teardown(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            with contextlib.suppress(Exception):
                process.wait(timeout=10)
        for server in (self.s3, self.postgres, self.redis_server):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.close()
        removed = netns.cleanup(keep_logs=True)  # the hosts' logs stay until `make cluster-test` ends
        logger.info("removed %s; the hosts' logs are in %s", removed, self.root)


__all__ = ["Cluster", "address", "stop_process"]
