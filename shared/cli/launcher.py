"""`oddasr run`: every process of the system on one machine, as supervised children.

Each child runs in its own session (so a Ctrl-C reaches the launcher only, which then stops
the children in order) and is asked by the kernel to die if the launcher itself is killed
(PR_SET_PDEATHSIG), so no process is orphaned either way.

The terminal gets the launcher's own lines and one "ready" line with every URL; the
children's banners and logs go to `data_dir/logs/<child>.log` (`oddasr run --verbose` shows
them instead). A child that exits has its last lines printed, so its reason is not buried.
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
import requests

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
#: How often the launcher asks /readyz until it can say the system is ready.
READY_POLL_INTERVAL_S = 1.0
#: Lines of a dead child's log shown on the terminal.
DEATH_TAIL_LINES = 20
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
    #: Where its output goes; None: the launcher's own terminal (`--verbose`).
    log_path: Path | None = None
    restarts_s: list[float] = field(default_factory=list)


def log_tail(path: Path, lines: int = DEATH_TAIL_LINES) -> str:
    """The last `lines` lines of a child's log (read from the end: logs grow long)."""
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 64 * 1024))
            return b"\n".join(log.read().splitlines()[-lines:]).decode("utf-8", errors="replace")
    except OSError:
        return ""


def ready_line(settings: Settings, log_dir: Path | None) -> str:
    """The one line a person waits for: everything is up, and where each part answers."""
    ws = f"{'wss' if settings.https_api else 'ws'}://{settings.ws_host}"
    parts = [f"OddASR is ready: API and web page {settings.api_base_url}/",
             f"live: OddASR {ws}:{settings.ws_port}/v1/asr, FunASR {ws}:{settings.funasr_ws_port}/, "
             f"native {settings.api_base_url.replace('http', 'ws', 1)}/v1/stream"]
    if settings.enable_flower:
        parts.append(f"Flower http://{settings.host}:{settings.flower_port}/")
    if log_dir is not None:
        parts.append(f"logs in {log_dir}/")
    return " | ".join(parts) + " (Ctrl-C stops everything)"


class Launcher:
    def __init__(self, settings: Settings, *, verbose: bool = False) -> None:
        self.settings = settings
        self.children: list[Child] = []
        self.stopping = False
        self.env = {**os.environ, **settings.as_child_environment()}
        self.log_dir: Path | None = None if verbose else Path(settings.data_dir).resolve() / "logs"
        self._ready_said = False
        self._next_ready_poll_s = 0.0

    def spawn(self, name: str, argv: list[str]) -> Child:
        log_path = None if self.log_dir is None else self.log_dir / f"{name}.log"
        logger.log(logging.INFO if log_path is None else logging.DEBUG, "starting %s: %s", name, " ".join(argv))
        child = Child(name, argv, self._popen(argv, log_path), log_path)
        self.children.append(child)
        return child

    def _popen(self, argv: list[str], log_path: Path | None) -> subprocess.Popen[bytes]:
        if log_path is None:
            return subprocess.Popen(argv, env=self.env, start_new_session=True, preexec_fn=die_with_parent)  # noqa: PLW1509
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,  # noqa: PLW1509
                                    start_new_session=True, preexec_fn=die_with_parent)

    def restart(self, child: Child) -> bool:
        """Start a dead child again; False when it has died too often to keep trying."""
        now_s = time.monotonic()
        child.restarts_s = [t for t in child.restarts_s if now_s - t < RESTART_WINDOW_S]
        if len(child.restarts_s) >= MAX_RESTARTS:
            return False
        child.restarts_s.append(now_s)
        _signal_group(child.process, signal.SIGKILL)  # whatever it left behind in its group
        child.process = self._popen(child.argv, child.log_path)
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
                    self._say_last_lines(self.children[-1])
                    raise SystemExit("redis-server did not start; see its output above") from None
                time.sleep(0.1)

    def start_all(self) -> None:
        Path(self.settings.data_dir).mkdir(parents=True, exist_ok=True)
        if self.log_dir is not None:
            logger.info("starting Redis, the workers, the API and Flower; each one's output: %s/<name>.log",
                        self.log_dir)
        # Migration steps are for `oddasr migrate`; here they would bury the line that matters.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        if not self.settings.redis_url and not self.settings.redis_sentinels:
            self.start_redis()
        upgrade_to_head(self.settings.database_url)
        pool = commands.default_worker_pool(self.settings)
        for index, (name, queues, concurrency) in enumerate(commands.default_worker_plan(self.settings)):
            metrics_port = commands.worker_metrics_port(self.settings, index)
            self.spawn(f"worker-{name}", commands.worker_argv(self.settings, queues, concurrency, pool, name,
                                                              metrics_port))
        self.spawn("worker-webhooks", commands.webhook_worker_argv(self.settings))
        if self.settings.stream_workers > 0 and not self.settings.disable_stream:
            self.spawn("stream-worker", commands.stream_worker_argv(self.settings, self.settings.stream_workers))
        for role in commands.api_roles(self.settings):
            self.spawn("api" if role in ("all", "http") else "api-websocket", commands.api_argv(self.settings, role))
        if self.settings.enable_flower:
            self.spawn("flower", commands.flower_argv(self.settings))
        logger.info("waiting for the API and the workers to answer (the first start loads the models)")

    def poll_ready(self) -> None:
        """Say once, when /readyz first answers ready, that everything is up and where."""
        if self._ready_said or time.monotonic() < self._next_ready_poll_s:
            return
        self._next_ready_poll_s = time.monotonic() + READY_POLL_INTERVAL_S
        verify: str | bool = self.settings.ssl_cert_path if self.settings.https_api else True
        try:
            answer = requests.get(f"{self.settings.api_base_url}/readyz", timeout=2, verify=verify)
            ready = answer.status_code == 200 and bool(answer.json().get("ready"))
        except (requests.RequestException, ValueError):
            return
        if ready:
            self._ready_said = True
            logger.info("%s", ready_line(self.settings, self.log_dir))

    def _say_last_lines(self, child: Child) -> None:
        if child.log_path is None:
            return  # its output is on the terminal already
        tail = log_tail(child.log_path)
        if tail:
            sys.stderr.write(f"--- last lines of {child.log_path} ---\n{tail}\n---\n")

    def supervise(self) -> int:
        """Restart children that die; stop everything on a signal or on a child that keeps dying."""
        exit_code = 0
        while not self.stopping:
            for child in self.children:
                code = child.process.poll()
                if code is None or self.stopping:
                    continue
                logger.error("%s exited with code %s", child.name, code)
                self._say_last_lines(child)
                if not self.restart(child):
                    logger.error("%s died %d times in %.0f s; stopping everything", child.name, MAX_RESTARTS,
                                 RESTART_WINDOW_S)
                    exit_code = 1
                    self.stopping = True
                    break
            if not self.stopping:
                self.poll_ready()
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


def run_all(settings: Settings, *, verbose: bool = False) -> int:
    launcher = Launcher(settings, verbose=verbose)

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
