"""What the API's request metrics cost per request, in the mode gunicorn runs them.

Times the WSGI wrapper of `api.request_metrics` around a trivial WSGI app (so only the
metrics are measured: two clock reads, a counter and a histogram update), with the values in
memory and in prometheus_client's multiprocess mode (memory-mapped files, what the API uses
under gunicorn), against the bare app. Also times one scrape of the multiprocess directory
after the requests, as /metrics would do it. Prints microseconds per request.

Run: `.venv/bin/python bench/metrics_overhead.py [--requests 200000]`
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _measure(mode: str, requests_count: int) -> None:
    """Runs in a fresh interpreter: the multiprocess directory must be set before
    prometheus_client is imported, as gunicorn's master does it for the API's workers."""
    sys.path.insert(0, str(ROOT))
    from shared.config import Settings
    from shared.metrics.process_group import scrape_registry, start_process_group

    root = Path(tempfile.mkdtemp(prefix="oddasr-bench-metrics-"))
    if mode == "multiprocess":
        start_process_group(Settings(metrics_dir=root), "bench")
    from prometheus_client import generate_latest

    from api.request_metrics import ROUTE_ENVIRON_KEY, RequestMetrics

    def bare(environ: dict, start_response) -> list[bytes]:  # type: ignore[no-untyped-def, type-arg]
        environ[ROUTE_ENVIRON_KEY] = "/v1/jobs/<job_id>"
        start_response("200 OK", [])
        return [b""]

    def no_op(_status: str, _headers: list[tuple[str, str]]) -> None:
        return None

    print(f"{mode} values, {requests_count} requests, one process:")
    for name, app in (("bare app", bare), ("with metrics", RequestMetrics(bare))):
        started_s = time.perf_counter()
        for _ in range(requests_count):
            app({"REQUEST_METHOD": "GET"}, no_op)
        print(f"  {name:>13}: {(time.perf_counter() - started_s) / requests_count * 1e6:.2f} us per request")
    started_s = time.perf_counter()
    body = generate_latest(scrape_registry())
    print(f"  one scrape: {(time.perf_counter() - started_s) * 1e3:.1f} ms ({len(body)} bytes)")
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--child", choices=["memory", "multiprocess"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _measure(args.child, args.requests)
        return
    for mode in ("memory", "multiprocess"):
        subprocess.run([sys.executable, __file__, "--child", mode, "--requests", str(args.requests)], check=True)


if __name__ == "__main__":
    main()
