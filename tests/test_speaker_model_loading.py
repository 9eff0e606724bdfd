"""The first diarized job of a Whisper worker loads the speaker model (5-30 s): while it
waits, its status says so; with `preload_speaker_model` the worker loads it in the
background once it is ready, and no job waits."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from shared.config import Settings
from shared.job_waiting import LOADING_SPEAKER_MODEL
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from tests.support.stack import Stack, running_stack, wait_for_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, own_redis) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("speaker-model"), own_redis.url, file_concurrency=1,
                       sentence_concurrency=0) as running:
        yield running


def test_the_first_diarize_job_says_it_is_loading_the_speaker_model(stack: Stack, speech_dir: Path) -> None:
    recording = make_long_recording(REFERENCE_SENTENCES[:2], speech_dir / "speaker-model-2.wav", gap_s=1.0)
    with recording.open("rb") as audio:
        created = requests.post(stack.url("/v1/jobs"), files={"audio": (recording.name, audio)},
                                data={"diarize": "true"}, timeout=60).json()
    seen: set[str | None] = set()
    deadline_s = time.monotonic() + 300
    while True:
        job = requests.get(stack.url(f"/v1/jobs/{created['id']}"), timeout=10).json()
        seen.add(job["waiting_for"])
        if job["status"] in ("succeeded", "failed"):
            break
        assert time.monotonic() < deadline_s, job
        time.sleep(0.05)  # a poll's pace, not a synchronisation: the loop ends on the job's status
    assert job["status"] == "succeeded" and job["waiting_for"] is None, job
    assert LOADING_SPEAKER_MODEL in seen, seen  # loading takes seconds: polls every 50 ms see it
    again = wait_for_job(stack, requests.post(stack.url("/v1/jobs"), files={"audio": recording.open("rb")},
                                              data={"diarize": "true"}, timeout=60).json()["id"])
    assert again["status"] == "succeeded" and again["waiting_for"] is None


def test_preload_speaker_model_loads_it_in_the_background(tmp_path: Path) -> None:
    from worker.services.runtime import build_runtime

    runtime = build_runtime(Settings(data_dir=tmp_path, whisper_model="tiny.en", cpu_threads=2, whisper_beam_size=1,
                                     model_cache_dir=Path(os.environ["ODDASR_TEST_MODEL_CACHE"]),
                                     redis_url="redis://127.0.0.1:1/0", preload_speaker_model=True))
    deadline_s = time.monotonic() + 300
    while not runtime.engine.speaker_model_ready:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline_s, "the speaker model never loaded"
        time.sleep(0.1)
