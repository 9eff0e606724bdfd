"""A Redis Sentinel deployment on loopback: a master, a replica and three sentinels, each a
real redis-server process on a free port (the replica `--replicaof` the master, the sentinels
`redis-server <conf> --sentinel`, a quorum of two, a master seen down after 1 s), optionally
with a password on the master and the replica."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.support.servers import RedisServer, _spawn, _wait_until

MASTER_NAME = "oddasr"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


class BedRedisServer(RedisServer):
    """A redis-server of the bed: the master, or a replica of `master_port`; with `password`
    its clients (and the replica, to its master) authenticate."""

    def __init__(self, directory: Path, master_port: int | None = None, password: str = "") -> None:
        super().__init__(directory)
        self.name = "redis-replica" if master_port else "redis-master"
        self.log = self.directory / f"{self.name}.log"
        self.master_port = master_port
        self.password = password

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--save", "", "--appendonly", "no", "--daemonize", "no"]
        if self.password:
            argv += ["--requirepass", self.password, "--masterauth", self.password]
        if self.master_port:
            argv += ["--replicaof", "127.0.0.1", str(self.master_port)]
        self.process = _spawn(argv, self.log, cwd=self.directory)
        client = redis.Redis(port=self.port, password=self.password or None, socket_connect_timeout=0.5,
                             socket_timeout=0.5)

        def ready() -> bool:
            return not self.master_port or client.info("replication").get("master_link_status") == "up"

        try:
            _wait_until(lambda: bool(client.ping()) and ready(), self.process, self.name, self.log)
        finally:
            client.close()


class SentinelServer(RedisServer):
    """`redis-server --sentinel` watching the master `MASTER_NAME` on `master_port`."""

    name = "redis-sentinel"

    def __init__(self, directory: Path, master_port: int, password: str = "") -> None:
        super().__init__(directory)
        self.master_port = master_port
        self.password = password

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self) -> None:
        config = self.directory / "sentinel.conf"  # the sentinel rewrites it: its own file
        config.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
                          f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2\n"
                          f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                          f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
                          f"sentinel parallel-syncs {MASTER_NAME} 1\n"
                          + (f"sentinel auth-pass {MASTER_NAME} {self.password}\n" if self.password else ""))
        self.process = _spawn([self.binary, str(config), "--sentinel"], self.log, cwd=self.directory)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            _wait_until(lambda: bool(client.sentinel_master(MASTER_NAME)), self.process, "redis sentinel", self.log)
        finally:
            client.close()


@dataclass
class SentinelBed:
    master: BedRedisServer
    replica: BedRedisServer
    sentinels: list[SentinelServer]

    @property
    def addresses(self) -> list[str]:
        return [s.address for s in self.sentinels]

    def current_master_port(self) -> int:
        """The master's port as a sentinel answers it now."""
        client = redis.Redis(port=self.sentinels[0].port, socket_connect_timeout=1, socket_timeout=1)
        try:
            return int(client.sentinel_get_master_addr_by_name(MASTER_NAME)[1])
        finally:
            client.close()


@contextlib.contextmanager
def sentinel_bed(directory: Path, password: str = "") -> Iterator[SentinelBed]:
    """The master and its replica (both asking for `password` when given; the sentinels ask
    for none), and three sentinels."""
    master = BedRedisServer(directory / "master", password=password)
    servers: list[RedisServer] = [master]
    try:
        master.start()
        replica = BedRedisServer(directory / "replica", master.port, password)
        servers.append(replica)
        replica.start()
        sentinels = []
        for index in range(3):
            sentinel = SentinelServer(directory / f"sentinel-{index}", master.port, password)
            servers.append(sentinel)
            sentinel.start()
            sentinels.append(sentinel)
        yield SentinelBed(master=master, replica=replica, sentinels=sentinels)
    finally:
        for server in reversed(servers):
            server.stop()
