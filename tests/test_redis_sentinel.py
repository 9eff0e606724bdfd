"""Redis Sentinel, opt-in (issue 20): the master is SIGKILLed under load, the sentinels promote
its replica, and the stack follows: no accepted job lost, new work accepted within 30 s.

Real processes throughout: a redis master, a replica (`--replicaof`), three sentinels, the
gunicorn API and a Celery worker configured with `redis_sentinels` / `redis_sentinel_master`.
The figures are printed (run with -s to see them); the 30 s bound is the issue's goal.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import redis
import requests
import soundfile
from redis.sentinel import SentinelConnectionPool

from shared.celery_factory import make_celery
from shared.config import Settings
from shared.redis_connect import celery_broker_url, limits_storage_uri, make_limits_storage, make_redis
from shared.stream_slots import summarize_slots
from tests.support.live_sessions import three_sentence_pcm
from tests.support.sentinel import MASTER_NAME, sentinel_bed
from tests.support.speech import synthesize
from tests.support.stack import running_stack, wait_for_job
from tests.support.waiting import wait_until
from tests.support.ws_clients import oddasr_session
from tests.test_streaming_faults import LiveClient, is_final

NEW_WORK_GOAL_S = 30.0


def test_sentinels_need_a_master_name_and_host_port() -> None:
    with pytest.raises(ValueError, match="redis_sentinel_master"):
        Settings(redis_sentinels=["127.0.0.1:26379"])
    with pytest.raises(ValueError, match="host:port"):
        Settings(redis_sentinels=["127.0.0.1"], redis_sentinel_master="m")
    settings = Settings(redis_sentinels="10.0.0.1:26379, 10.0.0.2:26379", redis_sentinel_master="m",
                        redis_url="redis://:pw@ignored:6379/3")
    assert settings.sentinel_addresses == [("10.0.0.1", 26379), ("10.0.0.2", 26379)]
    assert celery_broker_url(settings) == "sentinel://:pw@10.0.0.1:26379/3;sentinel://:pw@10.0.0.2:26379/3"
    assert make_celery(settings).conf.broker_transport_options["master_name"] == "m"
    assert limits_storage_uri(settings) == "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/m"


def test_without_sentinels_nothing_changes() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:6390/2")
    assert celery_broker_url(settings) == limits_storage_uri(settings) == "redis://127.0.0.1:6390/2"
    assert "master_name" not in make_celery(settings).conf.broker_transport_options
    client = make_redis(settings)
    assert not isinstance(client.connection_pool, SentinelConnectionPool)
    assert client.connection_pool.connection_kwargs["port"] == 6390


def test_a_master_password_reaches_the_master_and_not_the_sentinels(tmp_path: Path) -> None:
    """Every client kind (redis-py, Celery's kombu transport, the limits counters) finds the
    master through sentinels that ask for no password, and authenticates to the master."""
    with sentinel_bed(tmp_path / "redis", password="s3cret") as bed:
        settings = Settings(redis_url=bed.master.url, redis_sentinels=bed.addresses,
                            redis_sentinel_master=MASTER_NAME)
        client = make_redis(settings, socket_timeout=3)
        client.set("oddasr:test:sentinel", "1")
        assert client.connection_pool.get_master_address()[1] == bed.master.port
        with make_celery(settings).connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
            connection.default_channel.client.lpush("oddasr:test:kombu", "1")
        storage = make_limits_storage(limits_storage_uri(settings), "oddasr:test:limits", socket_timeout=3)
        assert storage.incr("counter", 60) == 1
        master = redis.Redis(port=bed.master.port, password="s3cret")
        assert master.exists("oddasr:test:sentinel", "oddasr:test:kombu") == 2
        assert any(key.startswith(b"oddasr:test:limits") for key in master.keys("*"))


def test_master_killed_under_load(tmp_path: Path, speech_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = synthesize("the quick brown fox jumps over the lazy dog", speech_dir / "sentinel-fox.wav")

    def submit() -> requests.Response:
        with clip.open("rb") as audio:
            return requests.post(stack.url("/v1/jobs"), files={"audio": ("fox.wav", audio)}, timeout=30)

    with sentinel_bed(tmp_path / "redis") as bed, running_stack(
            tmp_path, bed.master.url, file_concurrency=1, sentence_concurrency=0,
            redis_sentinels=bed.addresses, redis_sentinel_master=MASTER_NAME,
            reaper_interval_s=2.0, requeue_queued_after_s=10.0) as stack:
        # The API and the worker really go through the sentinels: the master they use is the one
        # a sentinel names, by a client built from the same settings.
        assert make_redis(stack.settings).connection_pool.get_master_address()[1] == bed.master.port
        accepted: list[str] = []
        for _ in range(4):
            response = submit()
            assert response.status_code == 202, response.text
            accepted.append(response.json()["id"])
        bed.master.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        killed_s = time.monotonic()
        refused: dict[int, int] = {}  # submitted at once and again until one is accepted
        while True:
            try:
                response = submit()
            except requests.RequestException:
                refused[0] = refused.get(0, 0) + 1
                continue
            if response.status_code == 202:
                accepted.append(response.json()["id"])
                break
            refused[response.status_code] = refused.get(response.status_code, 0) + 1
            assert time.monotonic() - killed_s < 120, f"no job accepted 120 s after the kill: {response.text}"
            time.sleep(0.5)
        new_work_after_s = time.monotonic() - killed_s
        wait_until(lambda: bed.current_master_port() == bed.replica.port, "the sentinels to promote the replica",
                   timeout_s=60)
        for _ in range(2):
            response = submit()
            assert response.status_code == 202, response.text
            accepted.append(response.json()["id"])
        finals = {job_id: wait_for_job(stack, job_id, timeout_s=240) for job_id in accepted}
        settled_after_s = time.monotonic() - killed_s
        succeeded = [job_id for job_id, job in finals.items() if job["status"] == "succeeded"]
        promoted = redis.Redis(port=bed.replica.port)
        assert promoted.info("replication")["role"] == "master"
        line = (f"sentinel failover: new work accepted after "
              f"{new_work_after_s:.1f} s (goal {NEW_WORK_GOAL_S:.0f} s); refused meanwhile {refused}; "
              f"accepted {len(accepted)}, succeeded {len(succeeded)}, lost {len(accepted) - len(succeeded)}; "
              f"all final {settled_after_s:.1f} s after the kill")
        with capsys.disabled():  # the figures are the test's report: shown even when it passes
            sys.stdout.write(f"\n{line}\n")
        assert len(succeeded) == len(accepted), {job_id: job["status"] for job_id, job in finals.items()}
        assert new_work_after_s < NEW_WORK_GOAL_S


def test_a_live_session_across_a_failover_ends_clearly_and_new_sessions_work(
        tmp_path: Path, speech_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pcm = three_sentence_pcm(speech_dir, "sentinel-stream-three.wav")
    with sentinel_bed(tmp_path / "redis") as bed, running_stack(
            tmp_path, bed.master.url, file_concurrency=1, sentence_concurrency=1,
            redis_sentinels=bed.addresses, redis_sentinel_master=MASTER_NAME, stream_idle_timeout_s=2.0,
            stream_slot_wait_s=2.0, stream_worker_timeout_s=1.5, stream_api_timeout_s=2.0) as stack:
        stack.start_stream_workers(1)
        stack.wait_stream_slots(1)
        ws_url = f"ws://127.0.0.1:{stack.settings.ws_port}/v1/asr"
        client = LiveClient(ws_url, pcm)
        client.wait_for(lambda m: m["header"]["name"] == "TranscriptionResultChanged")
        finals_before = sum(is_final(m) for _, m in client.messages)
        bed.master.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        killed_s = time.monotonic()
        _, ending = client.wait_for(lambda m: m["header"]["status"] != 0 or
                                    m["header"]["name"] == "TranscriptionCompleted", timeout_s=60)
        # Seen by then (LiveClient stamps a message when its recv() began, too early to quote).
        ended_after_s = time.monotonic() - killed_s
        client.close()
        assert ending["header"]["status"] != 0 and ending["header"]["status_text"], ending
        wait_until(lambda: bed.current_master_port() == bed.replica.port, "the sentinels to promote the replica",
                   timeout_s=60)
        sentinel_client = make_redis(stack.settings, socket_timeout=3)

        def idle_slot() -> bool:
            try:
                return summarize_slots(sentinel_client).idle >= 1
            except redis.ConnectionError:  # a sentinel may not name the new master yet
                return False

        wait_until(idle_slot, "a stream slot on the new master", timeout_s=60)
        slot_back_after_s = time.monotonic() - killed_s
        short = tmp_path / "short.wav"
        soundfile.write(short, np.frombuffer(pcm[:5 * 32000], dtype="<i2"), 16000, subtype="PCM_16")
        log = oddasr_session(ws_url, short, chunk_bytes=32000, interval_s=0.1,
                             stop_message={"name": "STOP_SESSION_REQ", "task_id": ""})
        assert log.messages[0].data["header"]["status"] == 0, log.messages[0].data
        assert log.close_code == 1000
        job = wait_for_job(stack, client.job_id, timeout_s=60)
        line = (f"sentinel failover under a live session: ended with status {ending['header']['status']} "
                f"({ending['header']['status_text']!r}) within {ended_after_s:.1f} s of the kill, "
                f"{finals_before} final(s) before it; its job {job['status']}; a new session served "
                f"{slot_back_after_s:.1f} s after the kill")
        with capsys.disabled():
            sys.stdout.write(f"\n{line}\n")
