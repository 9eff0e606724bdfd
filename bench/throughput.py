"""Jobs per minute through the whole service with 1 and with 2 worker processes.

Submits the same batch of short files at once and times until the last one succeeds.
Run: `.venv/bin/python bench/throughput.py [--jobs 16]`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import long_files, run_redis  # noqa: E402
from tests.support.stack import running_stack, wait_for_job  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--model", default="tiny.en")
    args = parser.parse_args()
    files = long_files(4, 2)  # about 8 s of speech each
    tmp = Path(tempfile.mkdtemp(prefix="oddasr-throughput-"))
    redis_server = run_redis(tmp / "redis")
    results: dict[int, float] = {}
    try:
        for processes in (1, 2):
            # One thread per process, so 2 processes use the 2 cores without oversubscribing.
            with running_stack(tmp / f"stack-{processes}", redis_server.url, file_concurrency=processes,
                               sentence_concurrency=0, whisper_model=args.model, cpu_threads=1,
                               whisper_beam_size=5) as stack:
                def submit(index: int) -> str:
                    with files[index % len(files)].open("rb") as audio:
                        return requests.post(stack.url("/v1/jobs"), files={"audio": audio}, timeout=60).json()["id"]

                started_s = time.perf_counter()
                with ThreadPoolExecutor(max_workers=8) as pool:
                    ids = list(pool.map(submit, range(args.jobs)))
                statuses = [wait_for_job(stack, job_id, timeout_s=900)["status"] for job_id in ids]
                elapsed_s = time.perf_counter() - started_s
                assert statuses == ["succeeded"] * args.jobs, statuses
                results[processes] = args.jobs / elapsed_s * 60.0
                print(f"{processes} worker process(es): {args.jobs} jobs in {elapsed_s:.1f} s = "
                      f"{results[processes]:.1f} jobs/min")
    finally:
        redis_server.stop()
    print(f"scaling 1 -> 2 processes: x{results[2] / results[1]:.2f} (2 cores on this machine)")


if __name__ == "__main__":
    main()
