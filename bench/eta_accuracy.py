"""How far the ETA is on a mixed queue: short and long files behind each other on one worker.

Each job's predicted finish is read right after it is queued (`estimated_finish_s` of
`GET /v1/jobs/{id}`) and compared with when it really finished. Warm-up: one short and one
long job, so the queue's window holds both lengths. The backlog alternates ~4 s sentences
and ~45 s recordings. Printed: the error of the predicted finish (median and max, absolute
and relative to the job's whole wait), per length, with the queue's fitted cost per job.

Run: `.venv/bin/python bench/eta_accuracy.py [--jobs 12]`
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CACHE_DIR, run_redis  # noqa: E402
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording, synthesize  # noqa: E402
from tests.support.stack import Stack, running_stack, wait_for_job  # noqa: E402


def post(stack: Stack, path: Path) -> str:
    with path.open("rb") as audio:
        response = requests.post(stack.url("/v1/jobs"), files={"audio": (path.name, audio)}, timeout=60)
    response.raise_for_status()
    return str(response.json()["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=12)
    args = parser.parse_args()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    short = synthesize(REFERENCE_SENTENCES[0], CACHE_DIR / "eta-short.wav")
    long = make_long_recording(REFERENCE_SENTENCES * 2, CACHE_DIR / "eta-long.wav", gap_s=0.8)
    tmp = Path(tempfile.mkdtemp(prefix="oddasr-eta-"))
    redis_server = run_redis(tmp / "redis")
    try:
        with running_stack(tmp / "stack", redis_server.url, file_concurrency=1, sentence_concurrency=0) as stack:
            for warm_up in (short, long):
                wait_for_job(stack, post(stack, warm_up), timeout_s=600)
            predicted: dict[str, tuple[str, float, float]] = {}
            for index in range(args.jobs):
                path = long if index % 2 else short
                job_id = post(stack, path)
                now_s = time.time()
                polled = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
                predicted[job_id] = ("long" if index % 2 else "short", now_s, now_s + polled["estimated_finish_s"])
            errors: dict[str, list[tuple[float, float]]] = {"short": [], "long": []}
            for job_id, (kind, submitted_s, predicted_s) in predicted.items():
                job = wait_for_job(stack, job_id, timeout_s=900)
                actual_s = datetime.fromisoformat(job["finished_at"]).timestamp()
                errors[kind].append((actual_s - predicted_s, abs(actual_s - predicted_s) / (actual_s - submitted_s)))
            cpu = requests.get(stack.url("/v1/queues"), timeout=10).json()["queues"]["cpu"]
    finally:
        redis_server.close()
    print(f"queue cpu: real_time_factor {cpu['real_time_factor']}, job_overhead_s {cpu.get('job_overhead_s')}")
    print("| jobs | error median s | error max s | mean signed s (late +) | relative median | relative max |")
    print("|---|---|---|---|---|---|")
    for kind, pairs in [*errors.items(), ("all", errors["short"] + errors["long"])]:
        absolute = [abs(e) for e, _ in pairs]
        relative = [r for _, r in pairs]
        signed_s = statistics.mean(e for e, _ in pairs)
        print(f"| {kind} ({len(pairs)}) | {statistics.median(absolute):.2f} | {max(absolute):.2f} | "
              f"{signed_s:+.2f} | {statistics.median(relative):.0%} | {max(relative):.0%} |")


if __name__ == "__main__":
    main()
