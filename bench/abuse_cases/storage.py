"""Issue 17, item 3: a WebM whose header understates its length, against what it is charged.

The file is 100 s of real Opus whose Matroska Segment Duration says 1 s (built with PyAV,
see tests/support/lying_audio.py). Each case reports the seconds charged to the key's daily
audio against the real seconds, and the job's outcome: as a sentence job, as a file job, and
as the job an older API admitted on the header's word (a row claiming 1 s and charged 1 s,
handed to the sentence worker), which the worker alone must stop. A fourth case uploads an
hour of WebM, whose packets the API now reads to measure it, while /healthz is probed.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import requests
from limits import RateLimitItemPerDay
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from bench.abuse_cases import Case
from shared import redis_keys
from shared.celery_factory import make_celery
from shared.config import QUEUE_SENTENCE
from shared.db.api_keys import ApiKeyRepository, KeyLimits
from shared.db.models import Job, JobStatus
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.schemas import TRANSCRIBE_TASK_NAME, JobOptions
from shared.storage import make_storage
from tests.support.lying_audio import lying_webm, write_webm_opus
from tests.support.stack import Stack

HASH_SECRET = "bench-abuse-storage"
DAILY_AUDIO_S = 100_000
REAL_S = 100.0
CLAIMED_S = 1.0
LONG_S = 3600.0
OVERRIDES: dict[str, object] = {"auth_mode": "required", "api_key_hash_secret": HASH_SECRET}


def _new_key(stack: Stack, name: str) -> tuple[str, str]:
    factory = make_session_factory(make_engine(stack.settings.database_url))
    row, token = ApiKeyRepository(factory, HASH_SECRET.encode()).create(
        f"{name}-{uuid.uuid4().hex[:6]}", limits=KeyLimits(audio_seconds_per_day=DAILY_AUDIO_S))
    return row.id, token


def _charged_s(stack: Stack, key_id: str) -> int:
    storage = RedisStorage(stack.settings.effective_redis_url, key_prefix=redis_keys.RATE_LIMIT_PREFIX)
    stats = SlidingWindowCounterRateLimiter(storage).get_window_stats(RateLimitItemPerDay(DAILY_AUDIO_S), key_id)
    return DAILY_AUDIO_S - stats.remaining


def _lying_file() -> Path:
    return lying_webm(Path(tempfile.mkdtemp(prefix="lying-")) / "lying.webm", real_s=REAL_S, claimed_s=CLAIMED_S)


def _final(stack: Stack, token: str, job_id: str, timeout_s: float = 600.0) -> dict:
    deadline_s = time.monotonic() + timeout_s
    while True:
        job = requests.get(stack.url(f"/v1/jobs/{job_id}"), headers={"Authorization": f"Bearer {token}"},
                           timeout=10).json()
        if job["status"] in ("succeeded", "failed", "canceled") or time.monotonic() > deadline_s:
            return job
        time.sleep(0.5)


def _submit(stack: Stack, token: str, path: Path, mode: str) -> requests.Response:
    with path.open("rb") as audio:
        return requests.post(stack.url("/v1/jobs"), headers={"Authorization": f"Bearer {token}"},
                             files={"audio": (path.name, audio, "audio/webm")}, data={"mode": mode}, timeout=600)


def _as_job(stack: Stack, mode: str) -> str:
    key_id, token = _new_key(stack, f"liar-{mode}")
    answer = _submit(stack, token, _lying_file(), mode)
    if answer.status_code != 202:
        outcome = f"{answer.status_code} ({answer.json()['error'][:60]})"
    else:
        job = _final(stack, token, answer.json()["id"])
        outcome = f"{job['status']}, audio_duration_s {job['audio_duration_s']:.1f}"
    return f"charged {_charged_s(stack, key_id)} s of {REAL_S:.0f} s real; {outcome}"


def _admitted_on_the_headers_word(stack: Stack) -> str:
    """The job an old probe admitted: 1 s claimed, 1 s charged, on the sentence queue."""
    key_id, token = _new_key(stack, "liar-admitted")
    path = _lying_file()
    job_id = uuid.uuid4().hex
    with path.open("rb") as audio:
        make_storage(stack.settings).put_file(f"audio/{job_id}", audio)
    factory = make_session_factory(make_engine(stack.settings.database_url))
    JobRepository(factory).create(Job(
        id=job_id, status=JobStatus.QUEUED, mode="sentence", queue=QUEUE_SENTENCE, options=JobOptions().model_dump(),
        audio_key=f"audio/{job_id}", audio_filename=path.name, audio_size_bytes=path.stat().st_size,
        audio_duration_s=CLAIMED_S, progress=0.0, attempts=0, api_key_id=key_id))
    SlidingWindowCounterRateLimiter(RedisStorage(stack.settings.effective_redis_url,
                                                 key_prefix=redis_keys.RATE_LIMIT_PREFIX)).hit(
        RateLimitItemPerDay(DAILY_AUDIO_S), key_id, cost=1)
    started_s = time.perf_counter()
    make_celery(stack.settings).send_task(TRANSCRIBE_TASK_NAME, args=[job_id], queue=QUEUE_SENTENCE, task_id=job_id)
    job = _final(stack, token, job_id)
    took_s = time.perf_counter() - started_s
    return (f"charged {_charged_s(stack, key_id)} s of {REAL_S:.0f} s real; {job['status']} in {took_s:.1f} s after"
            f" decoding {job['audio_duration_s']:.1f} s ({(job['error'] or '')[:50]}...)")


def _an_hour_measured(stack: Stack) -> str:
    key_id, token = _new_key(stack, "long-webm")
    path = write_webm_opus(Path(tempfile.mkdtemp(prefix="long-")) / "hour.webm", LONG_S)
    started_s = time.perf_counter()
    answer = _submit(stack, token, path, "file")
    took_s = time.perf_counter() - started_s
    if answer.status_code != 202:
        return f"{answer.status_code}: {answer.text[:80]}"
    requests.delete(stack.url(f"/v1/jobs/{answer.json()['id']}"), headers={"Authorization": f"Bearer {token}"},
                    timeout=10)
    return (f"{path.stat().st_size / 1e6:.0f} MB admitted in {took_s:.2f} s (upload + measure),"
            f" audio_duration_s {answer.json()['audio_duration_s']:.1f}, charged {_charged_s(stack, key_id)} s")


def cases() -> list[Case]:
    goal = "charged = real seconds; a sentence job never decodes past its limit"
    return [
        Case("storage: 100 s WebM claiming 1 s, sentence job", goal, lambda s: _as_job(s, "sentence"), OVERRIDES),
        Case("storage: 100 s WebM claiming 1 s, file job", goal, lambda s: _as_job(s, "file"), OVERRIDES),
        Case("storage: the same, admitted on its header's word (worker guard)", goal, _admitted_on_the_headers_word,
             OVERRIDES),
        Case("storage: 1 h WebM measured from its packets", "/healthz unaffected while the API measures",
             _an_hour_measured, OVERRIDES),
    ]
