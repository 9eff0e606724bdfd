"""Issue 17, items 3, 8 and 9: audio length is measured, the only copy of a recording is kept,
nothing is orphaned and nothing is unbounded.

One real stack (gunicorn API, a file and a sentence Celery worker, Redis, SQLite, local
storage) with keys required; the attacks are made as a client makes them. Where the API
already refuses what an attacker sends, the worker's own guard is proven by handing it the
job the old API would have admitted (a row and a task, as the API writes them).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from limits import RateLimitItemPerDay
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from shared import redis_keys
from shared.audio import decode_16k_mono, probe
from shared.celery_factory import make_celery
from shared.config import QUEUE_SENTENCE
from shared.db.api_keys import ApiKeyRepository, KeyLimits
from shared.db.models import Job, JobStatus
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.errors import AudioTooLongError
from shared.schemas import TRANSCRIBE_TASK_NAME, JobOptions
from shared.storage import Storage, make_storage
from tests.support.lying_audio import lying_webm
from tests.support.stack import Stack, running_stack

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


def test_the_worker_stops_a_job_at_its_modes_limit_and_charges_what_it_decoded(deployment: Deployment,
                                                                               lying_file: Path) -> None:
    """The job the old probe admitted (1 s, sentence, charged 1 s): the sentence worker decodes
    at most the sentence limit, fails it saying why, records and charges the decoded length."""
    key_id, key = deployment.key("liar-admitted", audio_seconds_per_day=DAILY_AUDIO_S)
    job_id = uuid.uuid4().hex
    with lying_file.open("rb") as audio:
        deployment.storage.put_file(f"audio/{job_id}", audio)
    deployment.jobs.create(Job(
        id=job_id, status=JobStatus.QUEUED, mode="sentence", queue=QUEUE_SENTENCE,
        options=JobOptions().model_dump(), audio_key=f"audio/{job_id}", audio_filename="lying.webm",
        audio_size_bytes=lying_file.stat().st_size, audio_duration_s=CLAIMED_S, progress=0.0, attempts=0,
        api_key_id=key_id))
    charged_at_admission_s = 1
    SlidingWindowCounterRateLimiter(RedisStorage(deployment.stack.settings.effective_redis_url,
                                                 key_prefix=redis_keys.RATE_LIMIT_PREFIX)).hit(
        RateLimitItemPerDay(DAILY_AUDIO_S), key_id, cost=charged_at_admission_s)
    make_celery(deployment.stack.settings).send_task(TRANSCRIBE_TASK_NAME, args=[job_id], queue=QUEUE_SENTENCE,
                                                     task_id=job_id)
    job = deployment.wait_final(job_id, key)
    assert job["status"] == "failed", job
    assert "60 s" in job["error"] and "sentence" in job["error"] and "said 1.0 s" in job["error"], job["error"]
    assert 60.0 < job["audio_duration_s"] < 62.5, job
    used_s = deployment.audio_used_s(key_id)
    assert used_s == int(job["audio_duration_s"]) + 1, used_s
