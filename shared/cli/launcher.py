"""`oddasr run`: every process of the system on one machine, as supervised children.

Each child runs in its own session (so a Ctrl-C reaches the launcher only, which then stops
the children in order) and is asked by the kernel to die if the launcher itself is killed
(PR_SET_PDEATHSIG), so no process is orphaned either way.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from shared.cli import commands
from shared.config import Settings
from shared.db.migrate import upgrade_to_head

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 20.0
#: A child that dies is started again, unless it died this often within the window: then
#: something is wrong that a restart will not fix, and everything stops with an error.
MAX_RESTARTS = 3
RESTART_WINDOW_S = 60.0
REDIS_START_TIMEOUT_S = 15.0
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM me when my parent dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes]
    restarts_s: list[float] = field(default_factory=list)


class Launcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children: list[Child] = []
        self.stopping = False
        self.env = {**os.environ, **settings.as_child_environment()}

    def spawn(self, name: str, argv: list[str]) -> Child:
        logger.info("starting %s: %s", name, " ".join(argv))
        child = Child(name, argv, self._popen(argv))
        self.children.append(child)
        return child

    def _popen(self, argv: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, env=self.env, start_new_session=True, preexec_fn=die_with_parent)  # noqa: PLW1509

    def restart(self, child: Child) -> bool:
        """Start a dead child again; False when it has died too often to keep trying."""
        now_s = time.monotonic()
        child.restarts_s = [t for t in child.restarts_s if now_s - t < RESTART_WINDOW_S]
        if len(child.restarts_s) >= MAX_RESTARTS:
            return False
        child.restarts_s.append(now_s)
        _signal_group(child.process, signal.SIGKILL)  # whatever it left behind in its group
        child.process = self._popen(child.argv)
        logger.warning("restarted %s (restart %d in the last %.0f s)", child.name, len(child.restarts_s),
                       RESTART_WINDOW_S)
        return True

    def start_redis(self) -> None:
        port = self.settings.embedded_redis_port
        if _port_in_use(port):
            # Often a system redis-server (Debian starts one when the package is installed).
            # This Redis is private to this deployment, so any free port will do.
            port = _free_port()
            logger.warning("port %d is taken (a system Redis?); the embedded redis-server uses port %d",
                           self.settings.embedded_redis_port, port)
            self.settings = self.settings.model_copy(update={"embedded_redis_port": port})
            self.env = {**os.environ, **self.settings.as_child_environment()}
        redis_dir = Path(self.settings.data_dir) / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        self.spawn("redis", commands.redis_argv(commands.find_redis_server(), port, redis_dir.resolve()))
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        deadline_s = time.monotonic() + REDIS_START_TIMEOUT_S
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline_s or self.children[-1].process.poll() is not None:
                    raise SystemExit("redis-server did not start; see its output above") from None
                time.sleep(0.1)

    def start_all(self) -> None:
        Path(self.settings.data_dir).mkdir(parents=True, exist_ok=True)
        if not self.settings.redis_url:
            self.start_redis()
        upgrade_to_head(self.settings.database_url)
        pool = commands.default_worker_pool(self.settings)
        for index, (name, queues, concurrency) in enumerate(commands.default_worker_plan(self.settings)):
            metrics_port = commands.worker_metrics_port(self.settings, index)
            self.spawn(f"worker-{name}", commands.worker_argv(self.settings, queues, concurrency, pool, name,
                                                              metrics_port))
        if self.settings.stream_workers > 0 and not self.settings.disable_stream:
            self.spawn("stream-worker", commands.stream_worker_argv(self.settings, self.settings.stream_workers))
        for role in commands.api_roles(self.settings):
            self.spawn("api" if role in ("all", "http") else "api-websocket", commands.api_argv(self.settings, role))
        if self.settings.enable_flower:
            self.spawn("flower", commands.flower_argv(self.settings))
        logger.info(
            "OddASR is starting: API on %s, Flower on http://%s:%d (Ctrl-C stops everything)",
            self.settings.api_base_url, self.settings.host, self.settings.flower_port,
        )

    def supervise(self) -> int:
        """Restart children that die; stop everything on a signal or on a child that keeps dying."""
        exit_code = 0
        while not self.stopping:
            for child in self.children:
                code = child.process.poll()
                if code is None or self.stopping:
                    continue
                logger.error("%s exited with code %s", child.name, code)
                if not self.restart(child):
                    logger.error("%s died %d times in %.0f s; stopping everything", child.name, MAX_RESTARTS,
                                 RESTART_WINDOW_S)
                    exit_code = 1
                    self.stopping = True
                    break
            time.sleep(0.2)
        self.stop_all()
        return exit_code

    def stop_all(self) -> None:
        # Front to back: stop taking requests, then let workers finish, then the broker.
        for child in reversed(self.children):
            self._stop(child)

    def _stop(self, child: Child) -> None:
        process = child.process
        if process.poll() is None:
            logger.info("stopping %s", child.name)
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=SHUTDOWN_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in %.0f s; killing it", child.name, SHUTDOWN_GRACE_S)
        # Kill whatever is left in the group (Celery's pool children, gunicorn's workers).
        _signal_group(process, signal.SIGKILL)
        process.wait()


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def run_all(settings: Settings) -> int:
    launcher = Launcher(settings)

    def _request_stop(signum: int, _frame: object) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        launcher.stopping = True

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        launcher.start_all()
    except BaseException:
        launcher.stop_all()
        raise
    code = launcher.supervise()
    logger.info("all processes stopped")
    sys.stdout.flush()
    return code
