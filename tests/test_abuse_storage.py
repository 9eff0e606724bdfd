"""Issue 17, items 3, 8 and 9: audio length is measured, the only copy of a recording is kept,
nothing is orphaned and nothing is unbounded.

One real stack (gunicorn API, a file and a sentence Celery worker, Redis, SQLite, local
storage) with keys required; the attacks are made as a client makes them. Where the API
already refuses what an attacker sends, the worker's own guard is proven by handing it the
job the old API would have admitted (a row and a task, as the API writes them).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
import requests
import soundfile
from limits import RateLimitItemPerDay
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from sqlalchemy import update

from shared import redis_keys
from shared.audio import decode_16k_mono, probe
from shared.celery_factory import make_celery
from shared.config import QUEUE_SENTENCE, Settings
from shared.db.api_keys import ApiKeyRepository, KeyLimits
from shared.db.migrate import upgrade_to_head
from shared.db.models import JobStatus, Speaker, SpeakerStatus, utc_now
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.db.speakers import SpeakerRepository
from shared.errors import AudioTooLongError, ServiceUnavailableError
from shared.jobs.keys import audio_key
from shared.reprocess import reprocess_job_id, stage_of
from shared.schemas import TRANSCRIBE_TASK_NAME, JobOptions
from shared.storage import Storage, make_storage
from tests.support.job_rows import job_row
from tests.support.lying_audio import lying_webm
from tests.support.stack import Stack, running_stack
from tests.support.ws_clients import open_ws
from worker.services.reaper import ReconcileContext, reconcile
from worker.services.reprocess import queue_reprocess

HASH_SECRET = "abuse-storage-hash-secret"
DAILY_AUDIO_S = 10_000
REAL_S = 100.0
CLAIMED_S = 1.0


@pytest.fixture(scope="module")
def lying_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lying_webm(tmp_path_factory.mktemp("lying") / "lying.webm", real_s=REAL_S, claimed_s=CLAIMED_S)


# --- item 3, without a stack: the probe measures, the decoder stops -------------------------------------


def test_the_probe_measures_a_webm_from_its_packets_not_its_header(lying_file: Path) -> None:
    info = probe(lying_file)
    assert abs(info.duration_s - REAL_S) < 0.5, info


def test_a_lying_webm_is_refused_by_the_sentence_limit_while_it_is_measured(lying_file: Path) -> None:
    with pytest.raises(AudioTooLongError) as caught:
        probe(lying_file, max_duration_s=60.0)
    assert caught.value.measured_s < 70.0  # stopped near the limit, not read to the end


def test_decoding_stops_at_the_limit_and_says_how_far_it_got(lying_file: Path) -> None:
    with pytest.raises(AudioTooLongError) as caught:
        decode_16k_mono(lying_file, max_duration_s=60.0)
    assert 60.0 < caught.value.measured_s < 62.5 and caught.value.limit_s == 60.0


# --- a real stack ---------------------------------------------------------------------------------------


@dataclass
class Deployment:
    stack: Stack
    keys: ApiKeyRepository
    jobs: JobRepository
    storage: Storage

    def key(self, name: str, **limits: int) -> tuple[str, str]:
        """(key id, key) of a new key with `limits`."""
        row, token = self.keys.create(name, limits=KeyLimits(**limits))
        return row.id, token

    def call(self, method: str, path: str, key: str, **kwargs: object) -> requests.Response:
        return requests.request(method, self.stack.url(path), headers={"Authorization": f"Bearer {key}"},
                                timeout=120, **kwargs)  # type: ignore[arg-type]

    def audio_used_s(self, key_id: str, limit_s: int = DAILY_AUDIO_S) -> int:
        """The key's audio seconds charged today, read from the counters the API writes."""
        storage = RedisStorage(self.stack.settings.effective_redis_url, key_prefix=redis_keys.RATE_LIMIT_PREFIX)
        stats = SlidingWindowCounterRateLimiter(storage).get_window_stats(RateLimitItemPerDay(limit_s), key_id)
        return limit_s - stats.remaining

    def wait_final(self, job_id: str, key: str, timeout_s: float = 120.0) -> dict:
        deadline_s = time.monotonic() + timeout_s
        while time.monotonic() < deadline_s:
            job = self.call("GET", f"/v1/jobs/{job_id}", key).json()
            if job["status"] in {"succeeded", "failed", "canceled"}:
                return job
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} not final after {timeout_s} s:\n{self.stack.log_tail('worker-sentence')}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Deployment]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("abuse-storage")
    with running_stack(tmp, redis_server.url, file_concurrency=1, sentence_concurrency=1, auth_mode="required",
                       api_key_hash_secret=HASH_SECRET, max_speakers_per_key=2, max_hotword_sets_per_key=2,
                       speaker_enroll_wait_s=60.0) as stack:
        factory = make_session_factory(make_engine(stack.settings.database_url))
        yield Deployment(stack=stack, keys=ApiKeyRepository(factory, HASH_SECRET.encode()),
                         jobs=JobRepository(factory), storage=make_storage(stack.settings))


def submit(deployment: Deployment, key: str, path: Path, **fields: str) -> requests.Response:
    with path.open("rb") as audio:
        return deployment.call("POST", "/v1/jobs", key, files={"audio": (path.name, audio, "audio/webm")},
                               data=fields)


def test_a_lying_webm_sentence_job_is_refused_and_charged_nothing(deployment: Deployment, lying_file: Path) -> None:
    key_id, key = deployment.key("liar-sentence", audio_seconds_per_day=DAILY_AUDIO_S)
    answer = submit(deployment, key, lying_file, mode="sentence")
    assert answer.status_code == 422, answer.text
    assert "60 s" in answer.json()["error"]
    assert deployment.audio_used_s(key_id) == 0


def test_a_lying_webm_file_job_is_admitted_and_charged_at_its_real_length(deployment: Deployment,
                                                                          lying_file: Path) -> None:
    key_id, key = deployment.key("liar-file", audio_seconds_per_day=DAILY_AUDIO_S)
    answer = submit(deployment, key, lying_file, mode="file")
    assert answer.status_code == 202, answer.text
    assert abs(answer.json()["audio_duration_s"] - REAL_S) < 0.5
    assert deployment.audio_used_s(key_id) == int(REAL_S) + 1  # 100.007 s: whole seconds, rounded up
    assert deployment.call("DELETE", f"/v1/jobs/{answer.json()['id']}", key).ok


def admitted_on_its_headers_word(deployment: Deployment, path: Path, key_id: str) -> str:
    """The sentence job the old probe admitted for `path`: a row claiming CLAIMED_S, charged
    1 s, its task sent to the sentence worker as the API sends it. Its job id."""
    job_id = uuid.uuid4().hex
    with path.open("rb") as audio:
        deployment.storage.put_file(f"audio/{job_id}", audio)
    deployment.jobs.create(job_row(
        job_id, mode="sentence", queue=QUEUE_SENTENCE, options=JobOptions().model_dump(),
        audio_key=audio_key(job_id), filename=path.name, size_bytes=path.stat().st_size, duration_s=CLAIMED_S,
        api_key_id=key_id))
    SlidingWindowCounterRateLimiter(RedisStorage(deployment.stack.settings.effective_redis_url,
                                                 key_prefix=redis_keys.RATE_LIMIT_PREFIX)).hit(
        RateLimitItemPerDay(DAILY_AUDIO_S), key_id, cost=1)
    make_celery(deployment.stack.settings).send_task(TRANSCRIBE_TASK_NAME, args=[job_id], queue=QUEUE_SENTENCE,
                                                     task_id=job_id)
    return job_id


def test_the_worker_stops_a_job_at_its_modes_limit_and_charges_what_it_decoded(deployment: Deployment,
                                                                               lying_file: Path) -> None:
    """The sentence worker decodes at most the sentence limit, fails the job saying why, and
    records (and charges) the decoded length, not the 1 s the file claimed."""
    key_id, key = deployment.key("liar-admitted", audio_seconds_per_day=DAILY_AUDIO_S)
    job = deployment.wait_final(admitted_on_its_headers_word(deployment, lying_file, key_id), key)
    assert job["status"] == "failed", job
    assert "60 s" in job["error"] and "sentence" in job["error"] and "said 1.0 s" in job["error"], job["error"]
    assert 60.0 < job["audio_duration_s"] < 62.5, job
    assert deployment.audio_used_s(key_id) == math.ceil(job["audio_duration_s"])


def test_a_job_that_decodes_longer_than_admitted_is_charged_the_difference(deployment: Deployment,
                                                                           tmp_path: Path) -> None:
    """Within the limit the job succeeds; its length and its charge are what was decoded."""
    key_id, key = deployment.key("liar-short", audio_seconds_per_day=DAILY_AUDIO_S)
    path = lying_webm(tmp_path / "twelve.webm", real_s=12.0, claimed_s=CLAIMED_S)
    job = deployment.wait_final(admitted_on_its_headers_word(deployment, path, key_id), key)
    assert job["status"] == "succeeded", job
    assert abs(job["audio_duration_s"] - 12.0) < 0.2, job
    assert deployment.audio_used_s(key_id) == math.ceil(job["audio_duration_s"]), "1 s at admission + the rest"


# --- item 9: caps on what a key may hold ----------------------------------------------------------------


def test_a_key_holds_at_most_its_cap_of_hotword_sets(deployment: Deployment) -> None:
    _key_id, key = deployment.key("set-hoarder")
    for name in ("one", "two"):
        assert deployment.call("PUT", f"/v1/hotwords/{name}", key, data="Alibaba 20").status_code == 201
    refused = deployment.call("PUT", "/v1/hotwords/three", key, data="Alibaba 20")
    assert refused.status_code == 409, refused.text
    assert "max_hotword_sets_per_key = 2" in refused.json()["error"]
    assert deployment.call("PUT", "/v1/hotwords/two", key, data="OddASR 5").status_code == 200, "replacing is fine"
    assert deployment.call("DELETE", "/v1/hotwords/one", key).ok
    assert deployment.call("PUT", "/v1/hotwords/three", key, data="Alibaba 20").status_code == 201
    _other_id, other = deployment.key("another-tenant")
    assert deployment.call("PUT", "/v1/hotwords/one", other, data="Alibaba 20").status_code == 201, "per key"


@pytest.fixture(scope="module")
def voice_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of a tone: a valid enrollment part for the API (the worker's verdict is not the point)."""
    path = tmp_path_factory.mktemp("voice") / "voice.wav"
    t = np.arange(16000 * 6) / 16000
    soundfile.write(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return path


def test_a_key_holds_at_most_its_cap_of_speakers(deployment: Deployment, voice_clip: Path) -> None:
    _key_id, key = deployment.key("speaker-hoarder")

    def enroll(name: str) -> requests.Response:
        files = [("audio", (voice_clip.name, voice_clip.read_bytes(), "audio/wav"))]
        return deployment.call("POST", "/v1/speakers", key, data={"name": name, "wait": "false"}, files=files)

    first, second = enroll("alice"), enroll("bob")
    assert first.status_code in (201, 202, 422) and second.status_code in (201, 202, 422), second.text
    refused = enroll("carol")
    assert refused.status_code == 409, refused.text
    assert "max_speakers_per_key = 2" in refused.json()["error"]
    assert deployment.call("DELETE", f"/v1/speakers/{first.json()['id']}", key).ok
    assert enroll("carol").status_code in (201, 202, 422)


# --- item 9: the reconciler's sweeps --------------------------------------------------------------------

#: A database of its own on the session's redis-server, so other modules' queues stay apart.
SWEEP_REDIS_DB = 11


@pytest.fixture
def context(tmp_path: Path, redis_server) -> Iterator[ReconcileContext]:  # type: ignore[no-untyped-def]
    url = redis_server.url.rsplit("/", 1)[0] + f"/{SWEEP_REDIS_DB}"
    settings = Settings(data_dir=tmp_path, redis_url=url, speaker_audio_orphaned_after_s=3600.0,
                        queue_max_backlog_jobs=2)
    upgrade_to_head(settings.database_url)
    engine = make_engine(settings.database_url)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield ReconcileContext(settings=settings, jobs=JobRepository(make_session_factory(engine)),
                           app=make_celery(settings), redis=client, storage=make_storage(settings))
    client.flushdb()
    engine.dispose()


def _age(ctx: ReconcileContext, key: str, seconds: float) -> None:
    """Make a stored object look `seconds` old (local storage: its file's mtime)."""
    path = Path(ctx.settings.storage_local_dir or "") / key
    then_s = time.time() - seconds
    os.utime(path, (then_s, then_s))


def test_retention_deletes_enrollment_audio_that_no_enrollment_holds(context: ReconcileContext) -> None:
    assert context.storage is not None
    speakers = SpeakerRepository(context.jobs.session_factory)
    orphan = "speakers/0123456789abcdef0123456789abcdef/0"  # a failed enrollment whose delete failed
    context.storage.put_bytes(orphan, b"RIFF-orphan")
    _age(context, orphan, 7200)
    young = "speakers/fedcba9876543210fedcba9876543210/0"  # stored a moment before its row
    context.storage.put_bytes(young, b"RIFF-young")
    working = speakers.create("k1", "alice", ["speakers/aaaa/0"], 6.0)  # enrolling: its audio is in use
    context.storage.put_bytes("speakers/aaaa/0", b"RIFF-working")
    lost = speakers.create("k1", "bob", ["speakers/bbbb/0"], 6.0, speaker_id="bbbb")
    context.storage.put_bytes("speakers/bbbb/0", b"RIFF-lost")
    engine = make_engine(context.settings.database_url)
    with engine.begin() as connection:  # bob's task was lost two hours ago
        connection.execute(update(Speaker).where(Speaker.id == lost.id).values(
            created_at=utc_now() - timedelta(hours=2)))
    engine.dispose()
    _age(context, "speakers/bbbb/0", 7200)

    reconcile(context)

    assert not context.storage.exists(orphan)
    assert context.storage.exists(young) and context.storage.exists("speakers/aaaa/0")
    assert speakers.find(working.id).status == SpeakerStatus.ENROLLING  # type: ignore[union-attr]
    assert not context.storage.exists("speakers/bbbb/0")
    bob = speakers.find("bbbb")
    assert bob is not None and bob.status == SpeakerStatus.FAILED and "enroll the speaker again" in (bob.error or "")


def _ended_session(ctx: ReconcileContext, key_id: str, audio_s: float) -> str:
    job_id = uuid.uuid4().hex
    ctx.jobs.create(job_row(job_id, status=JobStatus.SUCCEEDED, mode="stream",
                            options={"language": "en", "reprocess": "offline"}, audio_key=audio_key(job_id),
                            filename="standup", duration_s=audio_s, progress=1.0, attempts=1, api_key_id=key_id))
    assert ctx.storage is not None
    ctx.storage.put_bytes(f"audio/{job_id}", b"RIFF-the-recording")
    return job_id


def _counter_used_s(ctx: ReconcileContext, key_id: str, limit_s: int) -> int:
    storage = RedisStorage(ctx.settings.effective_redis_url, key_prefix=redis_keys.RATE_LIMIT_PREFIX)
    return limit_s - SlidingWindowCounterRateLimiter(storage).get_window_stats(
        RateLimitItemPerDay(limit_s), key_id).remaining


def test_a_reprocessing_job_is_charged_and_refused_past_the_keys_daily_audio(context: ReconcileContext) -> None:
    keys = ApiKeyRepository(context.jobs.session_factory, b"secret")
    key_id = keys.create("live", limits=KeyLimits(audio_seconds_per_day=50))[0].id
    assert context.storage is not None
    first = _ended_session(context, key_id, 40.0)
    child = queue_reprocess(context.jobs, context.storage, context.settings, None, context.redis, first, "offline")
    assert child is not None and context.jobs.get(child).status == JobStatus.QUEUED
    assert _counter_used_s(context, key_id, 50) == 40
    second = _ended_session(context, key_id, 40.0)
    refused = queue_reprocess(context.jobs, context.storage, context.settings, None, context.redis, second,
                              "offline")
    job = context.jobs.get(refused or "")
    assert job.status == JobStatus.FAILED and "audio seconds per day" in (job.error or ""), job.error
    assert _counter_used_s(context, key_id, 50) == 40, "a refused job pays nothing"
    assert not context.storage.exists(f"audio/{refused}"), "nor is its audio copied"
    assert stage_of("succeeded", job.status) == "reprocess_failed"


def test_a_reprocessing_job_waits_while_the_file_queue_is_full(context: ReconcileContext) -> None:
    assert context.storage is not None
    for _ in range(2):  # the backlog limit of this context
        job_id = uuid.uuid4().hex
        context.jobs.create(job_row(job_id, queue=context.settings.file_queue, audio_key=audio_key(job_id)))
    session = _ended_session(context, "", 10.0)
    with pytest.raises(ServiceUnavailableError, match="queue is full"):
        queue_reprocess(context.jobs, context.storage, context.settings, None, context.redis, session, "offline")
    assert context.jobs.find(reprocess_job_id(session)) is None, "nothing made: the sweep asks again later"


# --- item 8: the only copy of a recording is never discarded ---------------------------------------------

RECORDING_S = 2.0


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("abuse-live"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=0, stream_idle_timeout_s=5.0, stream_slot_wait_s=5.0,
                       stream_recording_retry_interval_s=1.0, stream_recording_store_attempts=4) as stack:
        stack.start_stream_workers(1)
        stack.wait_stream_slots(1)
        yield stack


@contextlib.contextmanager
def audio_storage_broken(stack: Stack) -> Iterator[None]:
    """Storage refuses every recording: `audio/` is a file, so nothing can be written under it
    (transcripts still can: a partial outage, the hardest case)."""
    audio_dir = Path(stack.settings.storage_local_dir or "") / "audio"
    shutil.rmtree(audio_dir, ignore_errors=True)
    audio_dir.write_bytes(b"not a directory")
    try:
        yield
    finally:
        audio_dir.unlink()


def live_session(stack: Stack) -> str:
    """A short native-protocol session, to its Summary; its job id."""
    t = np.arange(int(16000 * RECORDING_S)) / 16000
    pcm = (0.2 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()
    with open_ws(f"ws://127.0.0.1:{stack.settings.port}/v1/stream") as ws:
        ws.send(json.dumps({"type": "Start", "sample_rate": 16000, "language": "en"}))
        begin = json.loads(ws.recv(timeout=30))
        for offset in range(0, len(pcm), 6400):
            ws.send(pcm[offset:offset + 6400])
        ws.send(json.dumps({"type": "Close"}))
        deadline_s = time.monotonic() + 60
        while json.loads(ws.recv(timeout=max(0.1, deadline_s - time.monotonic())))["type"] not in ("Summary", "Error"):
            pass
    return str(begin["job_id"])


def parked_recording(stack: Stack, job_id: str) -> Path:
    return Path(stack.settings.data_dir) / "stream-recordings" / "unstored" / f"{job_id}.wav"


def job_of(stack: Stack, job_id: str) -> dict:
    return requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()


def wait_until(condition, what: str, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline_s = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline_s:
            raise TimeoutError(what)
        time.sleep(0.2)


def served_recording_s(stack: Stack, job_id: str) -> float | None:
    answer = requests.get(stack.url(f"/v1/jobs/{job_id}/audio"), timeout=10)
    return soundfile.info(io.BytesIO(answer.content)).duration if answer.status_code == 200 else None


def test_a_recording_storage_refused_is_kept_and_stored_when_storage_returns(live_stack: Stack) -> None:
    with audio_storage_broken(live_stack):
        job_id = live_session(live_stack)
        assert parked_recording(live_stack, job_id).is_file(), "the only copy of the recording was deleted"
        assert job_of(live_stack, job_id)["status"] == "running", "the job waits for its recording"
    wait_until(lambda: job_of(live_stack, job_id)["status"] == "succeeded", "the recording was never stored")
    assert abs((served_recording_s(live_stack, job_id) or 0.0) - RECORDING_S) < 0.1
    assert not parked_recording(live_stack, job_id).exists()


def test_a_recording_never_stored_fails_its_job_after_the_retries_and_is_served_once_stored(
        live_stack: Stack) -> None:
    with audio_storage_broken(live_stack):
        job_id = live_session(live_stack)
        wait_until(lambda: job_of(live_stack, job_id)["status"] == "failed", "the job never failed")
        job = job_of(live_stack, job_id)
        assert "could not be stored (4 attempts" in job["error"], job["error"]
        assert abs(job["audio_duration_s"] - RECORDING_S) < 0.1
        assert parked_recording(live_stack, job_id).is_file(), "a failed job still keeps its recording"
        assert served_recording_s(live_stack, job_id) is None
    wait_until(lambda: served_recording_s(live_stack, job_id) is not None, "the recording was never served")
    assert abs((served_recording_s(live_stack, job_id) or 0.0) - RECORDING_S) < 0.1
    assert job_of(live_stack, job_id)["status"] == "failed"
    assert not parked_recording(live_stack, job_id).exists()


def test_an_enrollment_that_fails_after_storing_its_parts_leaves_no_audio(tmp_path: Path, redis_server,  # type: ignore[no-untyped-def]
                                                                        voice_clip: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The database refuses the speaker's row after both parts were stored: 503, and the parts
    are deleted at once (the old route caught only queue errors and left them for ever)."""
    from sqlalchemy.exc import OperationalError

    from api.app import create_app

    def database_down(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("INSERT INTO speakers", {}, Exception("database is locked"))

    monkeypatch.setattr(SpeakerRepository, "create", database_down)
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_server.url)
    upgrade_to_head(settings.database_url)
    parts = [(voice_clip.open("rb"), "a.wav"), (voice_clip.open("rb"), "b.wav")]
    with create_app(settings).test_client() as client:
        answer = client.post("/v1/speakers", data={"name": "alice", "audio": parts})
    assert answer.status_code == 503, answer.get_json()
    assert "try again" in answer.get_json()["error"]
    assert list(make_storage(settings).list_keys("speakers")) == []


def test_a_delete_during_the_reprocessing_copy_makes_no_child_job(context: ReconcileContext) -> None:
    """The session is deleted while its recording is being copied for reprocessing: the copy
    goes with it and no file job is made (one was, holding a copy of deleted audio)."""
    assert context.storage is not None
    storage = context.storage
    session = _ended_session(context, "", 10.0)
    put_file = storage.put_file

    def copy_while_deleted(key: str, fileobj):  # type: ignore[no-untyped-def]
        stored = put_file(key, fileobj)
        storage.delete(f"audio/{session}")  # what DELETE /v1/jobs/{id} does, meanwhile
        context.jobs.clear_stored_keys(session)
        return stored

    storage.put_file = copy_while_deleted  # type: ignore[method-assign]
    try:
        made = queue_reprocess(context.jobs, storage, context.settings, None, context.redis, session, "offline")
    finally:
        storage.put_file = put_file  # type: ignore[method-assign]
    child = reprocess_job_id(session)
    assert made is None and context.jobs.find(child) is None, context.jobs.find(child)
    assert not storage.exists(f"audio/{child}"), "the copy of the deleted recording is gone too"
