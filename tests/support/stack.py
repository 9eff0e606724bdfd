"""A real OddASR deployment in a temp directory: gunicorn API + Celery workers as processes.

Tests talk to it over HTTP exactly as a client would. The processes are started with the
same argv builders the launcher and the container images use.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from shared.cli import commands
from shared.config import QUEUE_SENTENCE, QUEUE_WEBHOOKS, Settings
from shared.db.migrate import upgrade_to_head
from tests.support.servers import free_port

READY_TIMEOUT_S = 120.0


@dataclass
class Stack:
    settings: Settings
    base_url: str
    log_dir: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = process
        return process

    def start_worker(self, name: str, queues: list[str], concurrency: int, pool: str = "prefork",
                     metrics_port: int | None = None) -> None:
        self.spawn(f"worker-{name}", commands.worker_argv(self.settings, queues, concurrency, pool, name,
                                                          metrics_port))

    def start_webhook_worker(self) -> None:
        """The node that sends webhooks (threads, no engine), as `oddasr run` starts it."""
        self.spawn("worker-webhooks", commands.webhook_worker_argv(self.settings))

    def wait_webhook_worker(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until a node serves the webhooks queue (its heartbeat in Redis: /readyz does
        not wait for one, since jobs finish without it)."""
        import redis

        from shared.worker_presence import live_workers

        client = redis.Redis.from_url(self.settings.effective_redis_url)
        try:
            deadline_s = time.monotonic() + timeout_s
            while not live_workers(client, QUEUE_WEBHOOKS):
                process = self.processes.get("worker-webhooks")
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"worker-webhooks exited with {process.returncode}:\n"
                                       f"{self.log_tail('worker-webhooks')}")
                if time.monotonic() > deadline_s:
                    raise TimeoutError(f"no webhooks worker after {timeout_s} s:\n{self.log_tail('worker-webhooks')}")
                time.sleep(0.2)
        finally:
            client.close()

    def start_api(self, name: str, **overrides: object) -> tuple[str, Settings]:
        """Another API process on this stack, with its own ports and `overrides` (auth, limits);
        it shares the database, Redis, storage and workers. Returns its URL and settings."""
        settings = self.settings.model_copy(update={
            "port": free_port(), "ws_port": free_port(), "funasr_ws_port": free_port(),
            "metrics_dir": Path(self.settings.data_dir) / f"metrics-{name}", **overrides})
        return self.spawn_api(name, settings), settings

    def spawn_api(self, name: str, settings: Settings, timeout_s: float = 60.0) -> str:
        """Start an API process with `settings` (again, after a kill: on the same ports) and
        wait until it answers."""
        import requests

        env = {**os.environ, **settings.as_child_environment()}
        for role in commands.api_roles(settings):
            process_name = name if role in ("all", "http") else f"{name}-websocket"
            log = (self.log_dir / f"{process_name}.log").open("ab")
            self.processes[process_name] = subprocess.Popen(
                commands.api_argv(settings, role), env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        url = settings.api_base_url
        verify: str | bool = settings.ssl_cert_path if settings.https_api else True
        deadline_s = time.monotonic() + timeout_s
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=2, verify=verify).ok:
                    return url
            except requests.RequestException:
                if time.monotonic() > deadline_s:
                    raise TimeoutError(f"API {name} did not start:\n{self.log_tail(name)}") from None
                time.sleep(0.2)

    def start_stream_workers(self, processes: int = 1) -> None:
        self.spawn("stream-worker", commands.stream_worker_argv(self.settings, processes))

    def stream_slots(self) -> dict[str, dict]:
        """The stream worker slots as Redis holds them (worker id -> slot)."""
        import json

        import redis

        from shared import redis_keys

        client = redis.Redis.from_url(self.settings.effective_redis_url)
        try:
            return {k.decode(): json.loads(v) for k, v in client.hgetall(redis_keys.STREAM_SLOTS_HASH).items()}
        finally:
            client.close()

    def wait_stream_slots(self, idle: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until `idle` stream workers have loaded their model and offer a free slot."""
        deadline_s = time.monotonic() + timeout_s
        while time.monotonic() < deadline_s:
            now_s = time.time()
            free = [s for s in self.stream_slots().values()
                    if s["state"] == "idle" and now_s - s["heartbeat_s"] < 3]
            if len(free) >= idle:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{idle} idle stream workers not up after {timeout_s} s:\n"
                           f"{self.log_tail('stream-worker')}")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def wait_ready(self, queues: tuple[str, ...], timeout_s: float = READY_TIMEOUT_S) -> dict:
        """Wait until the API answers and every queue in `queues` has a live worker."""
        deadline_s = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline_s:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
            try:
                response = requests.get(self.url("/readyz"), timeout=5)
                last = response.json()
                served = {q for q, info in last.get("queues", {}).items() if info["workers"]}
                if response.status_code == 200 and set(queues) <= served:
                    return last
            except (requests.RequestException, ValueError) as exc:
                last = exc
            time.sleep(0.5)
        raise TimeoutError(f"stack not ready after {timeout_s} s: {last}")


def stack_settings(tmp: Path, redis_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp / "data",
        "redis_url": redis_url,
        "port": free_port(),
        "ws_port": free_port(),
        "funasr_ws_port": free_port(),
        "stream_workers": 0,
        # One session per stream worker process, as the tests that count slots and busy refusals
        # expect; the tests of several sessions per process set it themselves.
        "stream_sessions_per_worker": 1,
        "whisper_model": "tiny.en",
        "whisper_beam_size": 1,
        "cpu_threads": 1,
        "model_cache_dir": Path(os.environ.get("ODDASR_TEST_MODEL_CACHE", tmp / "models")),
        "sync_wait_timeout_s": 120.0,
        "log_level": "INFO",
        "enable_flower": False,
        # No metrics ports unless a test asks (fixed default ports would collide between stacks).
        "worker_metrics_port": 0,
        "stream_worker_metrics_port": 0,
        "webhook_worker_metrics_port": 0,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.contextmanager
def running_stack(
    tmp: Path, redis_url: str, *, file_concurrency: int = 2, sentence_concurrency: int = 1,
    file_pool: str = "prefork", **overrides: object,
) -> Iterator[Stack]:
    # /readyz waits for a sentence worker only where the settings say there is one.
    overrides.setdefault("sentence_worker_concurrency", sentence_concurrency)
    settings = stack_settings(tmp, redis_url, **overrides)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.database_url)
    env = {**os.environ, **settings.as_child_environment()}
    log_dir = tmp / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(settings=settings, base_url=f"http://{settings.host}:{settings.port}", log_dir=log_dir, env=env)
    try:
        for role in commands.api_roles(settings):
            stack.spawn("api" if role in ("all", "http") else "api-websocket", commands.api_argv(settings, role))
        stack.start_worker("file", [settings.file_queue], file_concurrency, pool=file_pool,
                           metrics_port=commands.worker_metrics_port(settings, 0))
        if sentence_concurrency:
            stack.start_worker("sentence", [QUEUE_SENTENCE], sentence_concurrency,
                               metrics_port=commands.worker_metrics_port(settings, 1))
        # Without a signing secret no job can have a callback_url: no webhooks node to wait for.
        if settings.webhook_secrets:
            stack.start_webhook_worker()
        queues = (settings.file_queue, QUEUE_SENTENCE) if sentence_concurrency else (settings.file_queue,)
        stack.wait_ready(queues)
        if settings.webhook_secrets:
            stack.wait_webhook_worker()
        yield stack
    finally:
        stack.stop_all()


def wait_for_job(stack: Stack, job_id: str, timeout_s: float = 120.0) -> dict:
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        job = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
        if job["status"] in {"succeeded", "failed", "canceled"}:
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} not final after {timeout_s} s")
