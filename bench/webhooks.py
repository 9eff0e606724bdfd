"""Webhook delivery: latency, a receiver outage, and the rate at which a backlog drains.

Two phases against a receiver on 127.0.0.1, through a real stack (the retry schedule is
compressed by configuration, `webhook_retry_schedule_s`: the same code path production runs):

1. latency: sentence jobs with a `callback_url`, one after another; for each, the time from
   the job's final status (`finished_at`) to the receiver's answer (median, p99);
2. outage: jobs submitted while the receiver answers 503; after it recovers, every event
   must arrive, and a receiver that de-duplicates on `webhook-id` must see each once.
   Reported: delivered / sent, duplicates, and the drain time after the recovery;
3. throughput: those events redelivered all at once, in deliveries per second.
Run: `.venv/bin/python bench/webhooks.py [--jobs 20] [--outage-s 10]`
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import run_redis, sentence_clips  # noqa: E402
from tests.support.stack import running_stack, wait_for_job  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SCHEDULE_S = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


class Receiver:
    """Records (path, webhook-id, time) of every request; answers 503 until `healthy_at_s`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, float, int]] = []
        self.healthy_at_s = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                self.rfile.read(int(self.headers.get("content-length") or 0))
                now_s = time.time()
                status = 200 if now_s >= receiver.healthy_at_s else 503
                with receiver.lock:
                    receiver.seen.append((self.path, self.headers.get("webhook-id", ""), now_s, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self, path: str) -> list[tuple[str, float]]:
        with self.lock:
            return [(wid, at_s) for p, wid, at_s, status in self.seen if p == path and status == 200]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--outage-s", type=float, default=10.0)
    args = parser.parse_args()
    clip = sentence_clips(1)[0]
    receiver = Receiver()
    tmp = Path(tempfile.mkdtemp(prefix="oddasr-webhooks-"))
    redis_server = run_redis(tmp / "redis")

    def submit(path: str) -> str:
        with clip.open("rb") as audio:
            response = requests.post(stack.url("/v1/jobs"), files={"audio": audio},
                                     data={"mode": "sentence", "callback_url": f"{receiver.url}{path}"}, timeout=60)
        response.raise_for_status()
        return str(response.json()["id"])

    try:
        with running_stack(tmp / "stack", redis_server.url, file_concurrency=1, sentence_concurrency=1,
                           webhook_secrets=[SECRET], webhook_allowed_networks=["127.0.0.0/8"],
                           webhook_retry_schedule_s=SCHEDULE_S, reaper_interval_s=1.0) as stack:
            latencies_ms = []
            for _ in range(args.jobs):
                job = wait_for_job(stack, submit("/latency"))
                finished_s = datetime.fromisoformat(job["finished_at"]).timestamp()
                deadline_s = time.monotonic() + 30
                while not receiver.delivered("/latency")[len(latencies_ms):] and time.monotonic() < deadline_s:
                    time.sleep(0.005)
                _, arrived_s = receiver.delivered("/latency")[len(latencies_ms)]
                latencies_ms.append((arrived_s - finished_s) * 1000)
            print(f"final status -> receiver's 2xx, {args.jobs} jobs one by one: median "
                  f"{statistics.median(latencies_ms):.0f} ms, p99 {np.percentile(latencies_ms, 99):.0f} ms")

            # The receiver fails from before the first job until `outage_s` after the last one
            # finished, so every event meets the outage at least once.
            receiver.healthy_at_s = float("inf")
            with ThreadPoolExecutor(max_workers=8) as pool:
                ids = list(pool.map(lambda _i: submit("/outage"), range(args.jobs)))
            for job_id in ids:
                wait_for_job(stack, job_id)
            receiver.healthy_at_s = time.time() + args.outage_s
            deadline_s = time.monotonic() + args.outage_s + 120
            while time.monotonic() < deadline_s:
                if len({wid for wid, _ in receiver.delivered("/outage")}) >= len(ids):
                    break
                time.sleep(0.1)
            delivered = receiver.delivered("/outage")
            unique = {wid for wid, _ in delivered}
            with receiver.lock:
                refused = sum(1 for p, _, _, status in receiver.seen if p == "/outage" and status == 503)
            drain_s = max(at_s for _, at_s in delivered) - receiver.healthy_at_s if delivered else float("nan")
            print(f"outage (503) from the first submission until {args.outage_s:.0f} s after the last job ended, "
                  f"{len(ids)} events: delivered {len(unique)} / sent "
                  f"{len(ids)} = {100 * len(unique) / len(ids):.0f} %; duplicates a de-duplicating receiver saw: "
                  f"{len(delivered) - len(unique)}; 503 answers along the way: {refused}")
            print(f"after the receiver recovered, the backlog drained in {drain_s:.1f} s "
                  f"({len(unique) / drain_s:.1f} events/s; retries wait for their next step of the schedule "
                  f"{SCHEDULE_S})")
            # Throughput: every one of those events due at once (redelivered), counted as they land.
            before = len(receiver.delivered("/outage"))
            started_s = time.time()
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda job_id: requests.post(stack.url(f"/v1/jobs/{job_id}/webhooks/redeliver"),
                                                           timeout=30).raise_for_status(), ids))
            deadline_s = time.monotonic() + 60
            while len(receiver.delivered("/outage")) < before + len(ids) and time.monotonic() < deadline_s:
                time.sleep(0.01)
            landed = receiver.delivered("/outage")[before:]
            took_s = max(at_s for _, at_s in landed) - started_s
            print(f"{len(landed)} events redelivered at once: all landed in {took_s:.2f} s = "
                  f"{len(landed) / took_s:.0f} deliveries/s (one sentence worker process sends them)")
    finally:
        receiver.server.shutdown()
        redis_server.close()


if __name__ == "__main__":
    main()
