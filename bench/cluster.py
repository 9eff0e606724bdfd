"""The multi-host bed (tests/cluster) under a steady load with faults, and throughput with two
versus one worker host.

Builds the bed of `make cluster-test` (network namespaces: infra, two APIs, two worker hosts,
two stream hosts, a client; root only), then, speaking as the client host:

1. throughput with both worker hosts: `--jobs` short files submitted at once through both
   APIs, timed until the last one succeeds;
2. a job every 4 s through both APIs (tests/cluster/load.py) while Redis is restarted empty
   and then a worker host (`work2`) is SIGKILLed: accepted, succeeded, failed, lost (goal 0),
   jobs that needed a second attempt, refusals while a fault lasted, and the time from the
   last fault to the last accepted job's end;
3. throughput with the one worker host left, the same batch.

All hosts share this machine's cores: two worker hosts do not have twice the CPU of one, so
the ratio says what the second host costs and gives here, not what it gives on two machines.
Every job of the steady load carries a `callback_url` to a receiver on the client host, and
both worker hosts also run `oddasr webhook-worker`: the webhooks received are counted per job
(a job with two final events = delivered twice; one event id received twice = a redelivery,
which the receiver dedupes by `webhook-id`).
Run (root): `PYTHONPATH=. .venv/bin/python bench/cluster.py [--jobs 8]`
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster import netns  # noqa: E402
from tests.cluster.bed import API_HOSTS, WORKER_HOSTS, Cluster, address  # noqa: E402
from tests.cluster.load import FINAL_STATUSES, SteadyLoad  # noqa: E402
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording  # noqa: E402
from tests.support.webhook_receiver import Receiver, running_receiver  # noqa: E402

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"bench-cluster-webhook-secret-32b").decode()

#: After the last fault the load goes on this long before it stops and is counted.
LOAD_AFTER_LAST_FAULT_S = 20.0


class WebhookCluster(Cluster):
    """The bed with webhooks on: a signing secret, the bed's subnet allowed as a destination,
    and a webhooks node on each worker host."""

    def environment(self, host: str) -> dict[str, str]:
        env = super().environment(host)
        env["ODDASR_WEBHOOK_SECRETS"] = WEBHOOK_SECRET
        env["ODDASR_WEBHOOK_ALLOWED_NETWORKS"] = f"{netns.SUBNET}.0/24"
        return env

    def start_host(self, host: str) -> None:
        super().start_host(host)
        if host in WORKER_HOSTS:
            self.spawn(host, "webhook-worker", ["webhook-worker"])


def webhook_counts(receiver: Receiver, job_ids: list[str]) -> dict[str, int]:
    """Final events received per job: missing, exactly once, more than once; and redeliveries."""
    events: dict[str, set[str]] = {}
    seen_ids: list[str] = []
    for request in list(receiver.requests):
        body = json.loads(request.body)
        seen_ids.append(request.headers.get("webhook-id", ""))
        events.setdefault(str(body["data"].get("id") or body["data"].get("job_id")), set()).add(
            request.headers.get("webhook-id", ""))
    return {"jobs without a webhook": sum(job_id not in events for job_id in job_ids),
            "jobs with exactly one": sum(len(events.get(job_id, ())) == 1 for job_id in job_ids),
            "jobs with two or more distinct events": sum(len(events.get(job_id, ())) > 1 for job_id in job_ids),
            "redeliveries of one event id": len(seen_ids) - len(set(seen_ids))}


def _final(cluster: Cluster, job_id: str, timeout_s: float = 600.0) -> dict:
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        try:
            body = requests.get(f"{cluster.api_url('api1')}/v1/jobs/{job_id}", timeout=10).json()
            if body.get("status") in FINAL_STATUSES:
                return body
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} not final after {timeout_s} s")


def throughput(cluster: Cluster, wav: Path, jobs: int) -> tuple[float, int]:
    """Jobs per minute for a batch submitted at once through both APIs; and how many succeeded."""
    started_s = time.monotonic()

    def submit(index: int) -> str:
        with wav.open("rb") as audio:
            response = requests.post(f"{cluster.api_url(API_HOSTS[index % 2])}/v1/jobs",
                                     files={"audio": (wav.name, audio)}, timeout=60)
        response.raise_for_status()
        return str(response.json()["id"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = list(pool.map(submit, range(jobs)))
    finals = [_final(cluster, job_id) for job_id in ids]
    elapsed_s = time.monotonic() - started_s
    return jobs / elapsed_s * 60.0, sum(body["status"] == "succeeded" for body in finals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=8, help="files per throughput batch")
    args = parser.parse_args()
    # Not under the bed's run directory: building the network removes earlier runs' ones.
    wav_dir = Path(tempfile.mkdtemp(prefix="oddasr-bench-cluster-"))
    wav = make_long_recording(REFERENCE_SENTENCES[:1], wav_dir / "one-sentence.wav")
    cluster = WebhookCluster(Path(tempfile.mkdtemp(prefix=netns.RUN_DIR_PREFIX)))
    try:
        cluster.build_network()
        cluster.start_infra()
        cluster.start_oddasr()
        netns.enter_for_good("client")
        throughput(cluster, wav, 4)  # warm-up, not counted: each worker process's first job is slower
        two_per_min, two_ok = throughput(cluster, wav, args.jobs)
        print(f"throughput, 2 worker hosts: {two_per_min:.1f} jobs/min ({two_ok}/{args.jobs} succeeded)", flush=True)

        with running_receiver(address("client")) as receiver:
            load = SteadyLoad(cluster, wav, fields={"callback_url": f"{receiver.url}/hook"})
            load.start()
            time.sleep(8.0)
            assert cluster.redis_server is not None
            cluster.restart_infra(cluster.redis_server)
            print("fault: Redis restarted (empty)", flush=True)
            time.sleep(20.0)
            killed = cluster.kill_host("work2")
            last_fault_s = time.monotonic()
            print(f"fault: worker host work2 SIGKILLed ({killed} processes)", flush=True)
            time.sleep(LOAD_AFTER_LAST_FAULT_S)
            counts = load.finish()
            print(f"steady load through the faults: {counts}; every accepted job final "
                  f"{time.monotonic() - last_fault_s:.1f} s after the last fault (the load went on "
                  f"{LOAD_AFTER_LAST_FAULT_S:.0f} s past it)", flush=True)
            job_ids = [job_id for job_id, _ in load.accepted]
            wait_s = time.monotonic() + 60.0  # deliveries follow the jobs' ends
            while time.monotonic() < wait_s and webhook_counts(receiver, job_ids)["jobs without a webhook"]:
                time.sleep(1.0)
            print(f"webhooks of the steady load: {webhook_counts(receiver, job_ids)}", flush=True)

        one_per_min, one_ok = throughput(cluster, wav, args.jobs)
        print(f"throughput, 1 worker host: {one_per_min:.1f} jobs/min ({one_ok}/{args.jobs} succeeded)", flush=True)
        print(f"two hosts / one host: {two_per_min / one_per_min:.2f}x (every host shares this machine's "
              "cores: not what a second machine gives)")
    finally:
        netns.go_home()
        cluster.teardown()


if __name__ == "__main__":
    main()
