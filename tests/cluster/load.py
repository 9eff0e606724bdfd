"""A steady trickle of jobs through both API hosts while the fault schedule runs.

Every accepted job (202) must end `succeeded`; a refusal while a fault lasts (503, a refused
connection to a dead API host) is the client's to retry and is counted apart. At the end:
accepted, succeeded, failed, lost (never final), and the jobs that needed more than one
attempt (the ones a fault hit; each still has one result).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from tests.cluster.bed import API_HOSTS, Cluster

SUBMIT_INTERVAL_S = 4.0
FINAL_STATUSES = {"succeeded", "failed", "canceled"}


class SteadyLoad:
    def __init__(self, cluster: Cluster, wav: Path, fields: dict[str, str] | None = None) -> None:
        self._cluster = cluster
        self._wav = wav
        #: Form fields sent with each job (bench/cluster.py: a callback_url).
        self._fields = fields or {}
        self._stop = threading.Event()
        self.accepted: list[tuple[str, str]] = []  # (job id, the API host that took it)
        self.refused: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        sent = 0
        while not self._stop.wait(SUBMIT_INTERVAL_S):
            api = API_HOSTS[sent % len(API_HOSTS)]
            sent += 1
            try:
                with self._wav.open("rb") as audio:
                    response = requests.post(f"{self._cluster.api_url(api)}/v1/jobs",
                                             files={"audio": (self._wav.name, audio)}, data=self._fields,
                                             timeout=30)
            except requests.RequestException:
                self.refused["no answer"] += 1
                continue
            if response.status_code == 202:
                self.accepted.append((str(response.json()["id"]), api))
            else:
                self.refused[str(response.status_code)] += 1

    def finish(self, timeout_s: float = 240.0) -> dict[str, object]:
        """Stop submitting, wait for every accepted job to end, and count."""
        self._stop.set()
        self._thread.join(timeout=60)
        deadline_s = time.monotonic() + timeout_s
        bodies: dict[str, dict] = {}
        while time.monotonic() < deadline_s and len(bodies) < len(self.accepted):
            for job_id, _ in self.accepted:
                if job_id in bodies:
                    continue
                with contextlib.suppress(requests.RequestException, ValueError):
                    body = requests.get(f"{self._cluster.api_url('api2')}/v1/jobs/{job_id}", timeout=10).json()
                    if body.get("status") in FINAL_STATUSES:
                        bodies[job_id] = body
            time.sleep(1.0)
        statuses = Counter(body["status"] for body in bodies.values())
        return {
            "accepted": len(self.accepted),
            "succeeded": statuses["succeeded"],
            "failed": statuses["failed"],
            "lost": len(self.accepted) - len(bodies),
            "more than one attempt": sum(body.get("attempts", 0) > 1 for body in bodies.values()),
            "refused while a fault lasted": dict(self.refused),
        }
