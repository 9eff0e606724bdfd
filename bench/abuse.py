"""What each attack of issue 17 does to a shared API process, and the figure its goal names.

For every case in `bench/abuse_cases/` (one module per kind of abuse), a prober asks
`/healthz` every 50 ms over one keep-alive connection while the attack runs; the table shows
its p99 and max, the API's resident memory (the gunicorn tree) before and after, and the
attack's own figure against its goal.

Run: `.venv/bin/python bench/abuse.py [--only NAME-SUBSTRING]`
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import tempfile
import threading
import time
from itertools import groupby
from pathlib import Path

import numpy as np
import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import abuse_cases  # noqa: E402
from bench.abuse_cases import Case  # noqa: E402
from bench.common import run_redis  # noqa: E402
from tests.support.stack import Stack, running_stack  # noqa: E402

PROBE_INTERVAL_S = 0.05
FAILED_PROBE_MS = 5000.0


def all_cases() -> list[Case]:
    found: list[Case] = []
    for module in pkgutil.iter_modules(abuse_cases.__path__):
        found.extend(importlib.import_module(f"bench.abuse_cases.{module.name}").cases())
    return found


def api_rss_mb(stack: Stack) -> float:
    """Resident memory of the API processes (gunicorn masters and their workers)."""
    total_bytes = 0
    for name, process in stack.processes.items():
        if not name.startswith("api"):
            continue
        try:
            root = psutil.Process(process.pid)
            total_bytes += sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.NoSuchProcess:
            continue
    return total_bytes / 1e6


class HealthProbe:
    """/healthz latencies (ms) and the API's peak RSS, sampled in a thread until stopped."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.latencies_ms: list[float] = []
        self.peak_rss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            started_s = time.perf_counter()
            try:
                ok = session.get(self.stack.url("/healthz"), timeout=5).status_code == 200
            except requests.RequestException:
                ok = False
            self.latencies_ms.append((time.perf_counter() - started_s) * 1000 if ok else FAILED_PROBE_MS)
            self.peak_rss_mb = max(self.peak_rss_mb, api_rss_mb(self.stack))
            self._stop.wait(PROBE_INTERVAL_S)


def run_case(stack: Stack, case: Case) -> str:
    before_mb = api_rss_mb(stack)
    with HealthProbe(stack) as probe:
        try:
            figure = case.attack(stack)
        except Exception as error:  # noqa: BLE001 - a broken attack is a row, not the end of the table
            figure = f"attack failed: {error!r}"[:120]
    after_mb = api_rss_mb(stack)
    latencies = probe.latencies_ms or [FAILED_PROBE_MS]
    return (f"| {case.name} | {np.percentile(latencies, 99):.1f} | {max(latencies):.1f} | "
            f"{before_mb:.0f} / {max(after_mb, probe.peak_rss_mb):.0f} / {after_mb:.0f} | {figure} | {case.goal} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    args = parser.parse_args()
    cases = [case for case in all_cases() if args.only.lower() in case.name.lower()]
    print("| attack | /healthz p99 ms | /healthz max ms | API RSS MB before / peak / after | measured | goal |")
    print("|---|---|---|---|---|---|")
    tmp = Path(tempfile.mkdtemp(prefix="oddasr-abuse-"))
    redis_server = run_redis(tmp / "redis")
    try:
        ordered = sorted(cases, key=lambda case: repr(case.stack_key))
        for index, (_, group) in enumerate(groupby(ordered, key=lambda case: repr(case.stack_key))):
            group_cases = list(group)
            first = group_cases[0]
            with running_stack(tmp / f"stack-{index}", redis_server.url, file_concurrency=first.file_concurrency,
                               sentence_concurrency=first.sentence_concurrency, **first.overrides) as stack:
                for case in group_cases:
                    print(run_case(stack, case), flush=True)
    finally:
        redis_server.close()


if __name__ == "__main__":
    main()
