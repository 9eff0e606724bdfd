"""Faults of a network of hosts, each a test, on the bed of `tests.cluster.bed`.

The bed runs `work2` and `api2` two minutes ahead and `stream2` two minutes behind for the
whole run, so every fault here also meets disagreeing clocks. Each test leaves the cluster as
it found it (a killed host is started again), so they run in any order; the figures go to the
end of the run's output.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.cluster import netns
from tests.cluster.bed import (
    API_HOSTS,
    CLOCK_OFFSETS_S,
    STALE_JOB_AFTER_S,
    STREAM_HOSTS,
    WORKER_HOSTS,
    Cluster,
    address,
)
from tests.cluster.conftest import record
from tests.support.live_sessions import read_messages, resume_and_finish, three_sentence_pcm
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from tests.support.waiting import wait_until
from tests.support.ws_clients import open_ws

pytestmark = pytest.mark.integration

FINAL_STATUSES = {"succeeded", "failed", "canceled"}


@pytest.fixture(scope="module")
def long_wav(speech_dir: Path) -> Path:
    """About a minute of speech: a job that runs long enough on tiny.en to be hit mid-way."""
    return make_long_recording(REFERENCE_SENTENCES * 2, speech_dir / "cluster-long.wav", gap_s=1.0)


@pytest.fixture(scope="module")
def pcm(speech_dir: Path) -> bytes:
    return three_sentence_pcm(speech_dir)


def submit(cluster: Cluster, wav: Path, api: str = "api1") -> str:
    with wav.open("rb") as audio:
        response = requests.post(f"{cluster.api_url(api)}/v1/jobs", files={"audio": (wav.name, audio)}, timeout=60)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def job(cluster: Cluster, job_id: str, api: str = "api1") -> dict:
    return requests.get(f"{cluster.api_url(api)}/v1/jobs/{job_id}", timeout=10).json()


def wait_job(cluster: Cluster, job_id: str, until, what: str, timeout_s: float = 180.0, api: str = "api1") -> dict:  # type: ignore[no-untyped-def]
    def check() -> dict | None:
        with contextlib.suppress(requests.RequestException, ValueError):
            body = job(cluster, job_id, api)
            return body if until(body) else None
        return None

    return wait_until(check, what, timeout_s=timeout_s, interval_s=0.2)


def host_of(worker: str | None) -> str:
    """The host of a job's `worker` ("host:pid")."""
    return (worker or "").split(":")[0]


def restart_host(cluster: Cluster, host: str) -> None:
    cluster.kill_host(host)
    wait_until(lambda: not netns.host_pids(host), f"every process of {host} gone", timeout_s=30)
    cluster.start_host(host)
    cluster.wait_ready()


def test_the_skewed_hosts_really_run_on_other_clocks(cluster: Cluster) -> None:
    """The premise of every clock test here: a skewed host's processes read its offset."""
    import subprocess
    import sys

    for host, offset_s in CLOCK_OFFSETS_S.items():
        printed = subprocess.run([sys.executable, "-c", "import time; print(time.time())"],
                                 env=cluster.environment(host), capture_output=True, text=True, timeout=60, check=True)
        assert abs(float(printed.stdout) - time.time() - offset_s) < 30, (host, offset_s, printed.stdout)


def test_the_cluster_comes_up_with_skewed_clocks_and_every_host_serving(cluster: Cluster) -> None:
    """Two minutes ahead or behind, every host is seen alive: none is refused as dead."""
    assert cluster.live_stream_hosts() == set(STREAM_HOSTS)
    served = cluster.served_queues("api2")
    assert {f"worker@{host}" for host in WORKER_HOSTS} <= set(served["cpu"]["workers"])


def test_jobs_through_both_apis_run_on_both_worker_hosts_once_each(cluster: Cluster, speech_dir: Path) -> None:
    """Skewed clocks reap nothing: every job runs exactly once, wherever it lands."""
    wav = make_long_recording(REFERENCE_SENTENCES[:2], speech_dir / "cluster-short.wav")
    ids = [submit(cluster, wav, API_HOSTS[n % 2]) for n in range(8)]
    bodies = [wait_job(cluster, job_id, lambda b: b["status"] in FINAL_STATUSES, "job final") for job_id in ids]
    assert all(b["status"] == "succeeded" for b in bodies), [b.get("error") for b in bodies]
    assert [b["attempts"] for b in bodies] == [1] * len(bodies), "a job ran twice"
    record("jobs on each worker host (8 submitted through both APIs)",
           str({host: sum(host_of(b["worker"]) == host for b in bodies) for host in WORKER_HOSTS}))


class LiveClient:
    """An OddASR-protocol session fed in the background at twice real time."""

    def __init__(self, url: str, pcm: bytes) -> None:
        self.ws = open_ws(url).__enter__()
        self.ws.send(json.dumps({"name": "StartTranscription", "message_id": "", "token": "", "task_id": ""}))
        begin = json.loads(self.ws.recv(timeout=30))
        assert begin["header"]["status"] == 0, begin
        self.job_id = begin["header"]["task_id"]
        self.messages: list[tuple[float, dict]] = []
        self._pcm = pcm
        threading.Thread(target=self._send, daemon=True).start()
        threading.Thread(target=self._read, daemon=True).start()

    def _send(self) -> None:
        with contextlib.suppress(Exception):
            for offset in range(0, len(self._pcm), 6400):
                self.ws.send(self._pcm[offset:offset + 6400])
                time.sleep(0.1)
            while True:
                self.ws.send(b"\0" * 6400)
                time.sleep(0.2)

    def _read(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                message = json.loads(self.ws.recv(timeout=120))
                self.messages.append((time.monotonic(), message))  # the time it came, not the wait's start

    def wait_for(self, predicate, timeout_s: float = 60.0) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
        def found() -> tuple[float, dict] | None:
            return next(((at_s, m) for at_s, m in list(self.messages) if predicate(m)), None)

        return wait_until(found, "a message", timeout_s=timeout_s, interval_s=0.05)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


def is_final(message: dict) -> bool:
    return message["header"]["name"] == "SentenceEnd" and message["payload"]["result"] not in ("", "END")


def session_host(cluster: Cluster, session_id: str) -> str:
    def holder() -> str | None:
        return next((slot["host"] for slot in cluster.stream_slots().values()
                     if slot.get("session") == session_id and slot.get("state") == "claimed"), None)

    return wait_until(holder, "the session's stream host", timeout_s=30)


def test_sessions_through_an_api_ahead_land_on_both_stream_hosts_one_of_them_behind(cluster: Cluster,
                                                                                      pcm: bytes) -> None:
    """api2 runs two minutes ahead, stream2 two minutes behind: four minutes apart, a session
    request from one to the other is neither refused as busy nor dropped as stale."""
    clients = [LiveClient(cluster.ws_url("api2"), pcm) for _ in STREAM_HOSTS]  # one slot each: they spread
    try:
        hosts = {session_host(cluster, client.job_id) for client in clients}
        for client in clients:
            client.wait_for(is_final)
    finally:
        for client in clients:
            client.close()
    assert hosts == set(STREAM_HOSTS)
    record("live sessions through api2 (clock +120 s)", f"served by {sorted(hosts)} (stream2 at -120 s)")


def test_a_stream_host_killed_mid_session_tells_the_client_and_keeps_the_finals(cluster: Cluster, pcm: bytes) -> None:
    client = LiveClient(cluster.ws_url("api1"), pcm)
    host = session_host(cluster, client.job_id)
    try:
        client.wait_for(is_final)
        killed_s = time.monotonic()
        assert cluster.kill_host(host) > 0
        told_s, error = client.wait_for(lambda m: m["header"]["status"] != 0, timeout_s=60)
    finally:
        client.close()
        restart_host(cluster, host)
    assert told_s >= killed_s, f"the session ended before its host was killed: {error}"
    record(f"a dead stream host ({host}, clock {CLOCK_OFFSETS_S.get(host, 0):+d} s): client told after",
           f"{told_s - killed_s:.2f} s (goal 2 s)")
    assert told_s - killed_s < 8, f"told after {told_s - killed_s:.1f} s"  # a latency goal, with margin here
    assert error["header"]["status_text"]
    body = wait_job(cluster, client.job_id, lambda b: b["status"] != "running", "the session's job ended",
                    timeout_s=60)
    assert body["status"] == "failed" and len(body["result"]["segments"]) >= 1, "its finished sentences are kept"


def test_a_worker_host_killed_mid_job_leaves_the_job_to_the_other_host(cluster: Cluster, long_wav: Path) -> None:
    job_id = submit(cluster, long_wav)
    running = wait_job(cluster, job_id, lambda b: b["status"] == "running" and b["worker"], "the job running")
    host = host_of(running["worker"])
    killed_s = time.monotonic()
    try:
        assert cluster.kill_host(host) > 0
        body = wait_job(cluster, job_id, lambda b: b["status"] in FINAL_STATUSES, "the job final", timeout_s=240)
        finished_s = time.monotonic()
    finally:
        restart_host(cluster, host)
    assert body["status"] == "succeeded", body.get("error")
    assert host_of(body["worker"]) != host and body["attempts"] == 2
    record(f"a worker host killed mid-job ({host}): the other host finished it after",
           f"{finished_s - killed_s:.1f} s (lease {STALE_JOB_AFTER_S:.0f} s)")


def test_a_frozen_worker_host_loses_its_job_and_its_late_result_changes_nothing(cluster: Cluster,
                                                                                 long_wav: Path) -> None:
    job_id = submit(cluster, long_wav)
    running = wait_job(cluster, job_id, lambda b: b["status"] == "running" and b["worker"], "the job running")
    host = host_of(running["worker"])
    frozen_s = time.monotonic()
    assert netns.signal_host(host, signal.SIGSTOP) > 0
    try:
        body = wait_job(cluster, job_id, lambda b: b["status"] in FINAL_STATUSES, "the job final", timeout_s=240)
        finished_s = time.monotonic()
        time.sleep(max(0.0, 2 * STALE_JOB_AFTER_S - (time.monotonic() - frozen_s)))  # frozen twice the lease
    finally:
        netns.signal_host(host, signal.SIGCONT)
    assert body["status"] == "succeeded" and host_of(body["worker"]) != host
    # The thawed host runs on to its own end; give it the time the job took, then look again.
    wait_until(lambda: cluster.served_queues("api1")["cpu"]["workers"].count(f"worker@{host}") == 1,
               "the thawed host back", timeout_s=60)
    time.sleep(finished_s - frozen_s)
    after = job(cluster, job_id)
    assert (after["status"], after["worker"], after["finished_at"], after["result"]["text"]) == (
        body["status"], body["worker"], body["finished_at"], body["result"]["text"]), "the late result changed it"
    record(f"a worker host frozen mid-job ({host}): the other host finished it after",
           f"{finished_s - frozen_s:.1f} s; the late result changed nothing")


def test_an_api_host_killed_under_a_live_session_the_client_resumes_through_the_other(
        cluster: Cluster, pcm: bytes) -> None:
    received: list[dict] = []
    ws = open_ws(f"ws://{address('api1')}:{9002}/v1/stream")
    ws.send(json.dumps({"type": "Start", "language": "en"}))
    begin = json.loads(ws.recv(timeout=30))
    threading.Thread(target=read_messages, args=(ws, received), daemon=True).start()
    half = len(pcm) // 2 // 2 * 2
    for offset in range(0, half, 6400):
        ws.send(pcm[offset:min(offset + 6400, half)])
        time.sleep(0.1)
    wait_until(lambda: any(m["type"] == "Final" for m in received), "a final before the kill", timeout_s=60)
    killed_s = time.monotonic()
    cluster.kill_host("api1")
    try:
        _, resumed_s = resume_and_finish(f"ws://{address('api2')}:{9002}/v1/stream", begin, pcm, received)
    finally:
        restart_host(cluster, "api1")
    indexes = [m["index"] for m in received if m["type"] == "Final"]
    assert indexes == list(range(len(indexes))) and len(indexes) >= 3, f"each final once, in order: {indexes}"
    body = wait_job(cluster, begin["job_id"], lambda b: b["status"] != "running", "the session's job", api="api2")
    assert body["status"] == "succeeded" and len(body["result"]["segments"]) == len(indexes)
    record("an API host killed under a live session: resumed through the other API after",
           f"{resumed_s - killed_s:.2f} s, no final lost")


def test_a_worker_host_partitioned_from_redis_and_postgres_mid_job_then_healed(cluster: Cluster,
                                                                                long_wav: Path) -> None:
    job_id = submit(cluster, long_wav)
    running = wait_job(cluster, job_id, lambda b: b["status"] == "running" and b["worker"], "the job running")
    host = host_of(running["worker"])
    cut_s = time.monotonic()
    netns.partition(host, address("infra"))
    try:
        body = wait_job(cluster, job_id, lambda b: b["status"] in FINAL_STATUSES, "the job final", timeout_s=240)
        finished_s = time.monotonic()
    finally:
        netns.heal(host, address("infra"))
    assert body["status"] == "succeeded" and host_of(body["worker"]) != host
    wait_until(lambda: f"worker@{host}" in cluster.served_queues("api1")["cpu"]["workers"],
               "the healed host serving again", timeout_s=120)
    healed = job(cluster, job_id)
    assert (healed["status"], healed["worker"], healed["result"]["text"]) == (
        body["status"], body["worker"], body["result"]["text"])
    record(f"a worker host cut off from Redis and PostgreSQL mid-job ({host}): finished elsewhere after",
           f"{finished_s - cut_s:.1f} s; the host serves again after the heal")


def submit_batch(cluster: Cluster, wav: Path, count: int) -> list[str]:
    return [submit(cluster, wav, API_HOSTS[n % 2]) for n in range(count)]


def all_succeed_once(cluster: Cluster, ids: list[str], timeout_s: float = 240.0) -> list[dict]:
    bodies = [wait_job(cluster, job_id, lambda b: b["status"] in FINAL_STATUSES, "job final", timeout_s=timeout_s)
              for job_id in ids]
    assert [b["status"] for b in bodies] == ["succeeded"] * len(ids), [b.get("error") for b in bodies]
    return bodies


def test_redis_restarted_loses_no_accepted_job(cluster: Cluster, speech_dir: Path) -> None:
    """Redis without persistence comes back empty: queued messages are gone, and the
    reconciler sends the jobs the database still owes again."""
    wav = make_long_recording(REFERENCE_SENTENCES[2:4], speech_dir / "cluster-redis.wav")
    ids = submit_batch(cluster, wav, 6)
    assert cluster.redis_server is not None
    restarted_s = time.monotonic()
    cluster.restart_infra(cluster.redis_server)
    bodies = all_succeed_once(cluster, ids, timeout_s=300)
    record("Redis restarted (empty) with 6 jobs accepted: all succeeded after",
           f"{time.monotonic() - restarted_s:.1f} s, attempts {sorted(b['attempts'] for b in bodies)}")
    cluster.wait_ready()


def test_postgresql_restarted_loses_no_accepted_job(cluster: Cluster, speech_dir: Path) -> None:
    wav = make_long_recording(REFERENCE_SENTENCES[4:6], speech_dir / "cluster-postgres.wav")
    ids = submit_batch(cluster, wav, 6)
    assert cluster.postgres is not None
    restarted_s = time.monotonic()
    cluster.restart_infra(cluster.postgres, down_s=5.0)
    all_succeed_once(cluster, ids, timeout_s=300)
    record("PostgreSQL down 5 s with 6 jobs accepted: all succeeded after", f"{time.monotonic() - restarted_s:.1f} s")
    cluster.wait_ready()


def test_s3_down_for_30_s_refuses_uploads_with_503_and_loses_no_accepted_job(cluster: Cluster,
                                                                           speech_dir: Path) -> None:
    wav = make_long_recording(REFERENCE_SENTENCES[6:8], speech_dir / "cluster-s3.wav")
    ids = submit_batch(cluster, wav, 4)
    assert cluster.s3 is not None
    cluster.s3.stop()
    down_s = time.monotonic()
    answers = []
    try:
        while time.monotonic() - down_s < 30:
            with wav.open("rb") as audio:
                answers.append(requests.post(f"{cluster.api_url(API_HOSTS[len(answers) % 2])}/v1/jobs",
                                             files={"audio": (wav.name, audio)}, timeout=60).status_code)
            time.sleep(2)
    finally:
        with netns.on_host("infra"):
            cluster.s3.start()
    assert answers and set(answers) == {503}, answers
    ids.append(submit(cluster, wav))  # and accepted again once it is back
    all_succeed_once(cluster, ids, timeout_s=300)
    record("S3 down 30 s", f"{len(answers)} uploads answered 503 while down; all {len(ids)} accepted jobs succeeded")
