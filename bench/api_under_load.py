"""/healthz latency while the API holds slow and waiting clients (the server-model goal).

Three loads, each while a prober asks /healthz every 50 ms over one keep-alive connection:

- 200 uploads trickling one byte a second (from 13 loopback addresses, so the per-client cap
  of 16 does not refuse them), plus 100 synchronous `/v1/asr` sentence calls waiting for their
  jobs: goal /healthz p99 < 50 ms;
- 100 open websockets on the OddASR port;
- nothing (the baseline).

`--worker-class gthread` runs the same loads against the old server model (32 threads) for
the before/after comparison.
Run: `.venv/bin/python bench/api_under_load.py [--seconds 20] [--worker-class gthread]`
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import run_redis, sentence_clips  # noqa: E402
from shared.cli import commands  # noqa: E402
from tests.support.stack import Stack, running_stack  # noqa: E402
from tests.support.ws_clients import open_ws  # noqa: E402

PROBE_INTERVAL_S = 0.05


def probe_healthz(stack: Stack, seconds: float) -> list[float]:
    """/healthz latencies (ms) for `seconds`; a failed or timed-out probe counts as 5000 ms."""
    latencies = []
    session = requests.Session()
    deadline_s = time.monotonic() + seconds
    while time.monotonic() < deadline_s:
        started_s = time.perf_counter()
        try:
            ok = session.get(stack.url("/healthz"), timeout=5).status_code == 200
        except requests.RequestException:
            ok = False
        latencies.append((time.perf_counter() - started_s) * 1000 if ok else 5000.0)
        time.sleep(PROBE_INTERVAL_S)
    return latencies


def report(name: str, latencies: list[float]) -> None:
    failed = sum(1 for value in latencies if value >= 5000)
    print(f"{name:60s} | {np.percentile(latencies, 50):7.1f} | {np.percentile(latencies, 99):7.1f} | "
          f"{max(latencies):7.1f} | {len(latencies):5d} | {failed}")


def slow_uploads(stack: Stack, count: int, stop: threading.Event) -> list[socket.socket]:
    head = (b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
            b"Content-Length: 1000000\r\n\r\n--xyz\r\nContent-Disposition: form-data; name=\"audio\"; "
            b"filename=\"a.wav\"\r\n\r\n")
    sockets = []
    for index in range(count):
        with contextlib.suppress(OSError):
            sock = socket.create_connection(("127.0.0.1", stack.settings.port), timeout=10,
                                            source_address=(f"127.0.1.{1 + index // 16}", 0))
            sock.sendall(head)
            sockets.append(sock)

    def trickle() -> None:
        while not stop.wait(1.0):
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"\0")

    threading.Thread(target=trickle, daemon=True).start()
    return sockets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--worker-class", choices=["gevent", "gthread"], default="gevent")
    args = parser.parse_args()
    if args.worker_class == "gthread":
        build = commands.api_argv

        def gthread_argv(settings, role="all"):  # type: ignore[no-untyped-def]
            argv = build(settings, role)
            index = argv.index("--worker-class")
            return [*argv[:index], "--worker-class", "gthread", "--threads", "32", *argv[index + 2:]]

        commands.api_argv = gthread_argv  # type: ignore[assignment]
    clip = sentence_clips(1)[0]
    tmp = Path(tempfile.mkdtemp(prefix="oddasr-load-"))
    redis_server = run_redis(tmp / "redis")
    try:
        with running_stack(tmp / "stack", redis_server.url, file_concurrency=1, sentence_concurrency=1,
                           sync_wait_timeout_s=600.0) as stack:
            print(f"API worker class: {args.worker_class}; /healthz every {PROBE_INTERVAL_S * 1000:.0f} ms for "
                  f"{args.seconds:.0f} s per load")
            print(f"{'load':60s} | p50 ms  | p99 ms  | max ms  | probes | failed")
            report("none", probe_healthz(stack, args.seconds))

            stop = threading.Event()
            sockets = slow_uploads(stack, 200, stop)

            def sync_call() -> int:
                with clip.open("rb") as audio:
                    try:
                        return requests.post(stack.url("/v1/asr"), files={"audio": audio},
                                             data={"mode": "sentence"}, timeout=600).status_code
                    except requests.RequestException:
                        return 0

            with ThreadPoolExecutor(max_workers=100) as pool:
                futures = [pool.submit(sync_call) for _ in range(100)]
                time.sleep(1.0)
                report(f"{len(sockets)} trickling uploads + 100 waiting /v1/asr calls",
                       probe_healthz(stack, args.seconds))
                stop.set()
                for sock in sockets:
                    sock.close()
                statuses = [f.result() for f in futures]
            print(f"  the 100 /v1/asr calls answered: {sorted(set(statuses))} "
                  f"({statuses.count(200)} with 200)")

            if args.worker_class == "gevent":
                with contextlib.ExitStack() as websockets:
                    for index in range(100):  # 4 addresses: one may hold 32 (max_sockets_per_client)
                        websockets.enter_context(open_ws(f"ws://127.0.0.1:{stack.settings.ws_port}/v1/asr",
                                                         source_ip=f"127.0.1.{101 + index // 25}"))
                    report("100 open websockets", probe_healthz(stack, min(args.seconds, 8.0)))
    finally:
        redis_server.close()


if __name__ == "__main__":
    main()
