"""Issue 17, item 1: reading a finished job whose hotword set holds 1,000 words.

The hits used to be matched on every `GET /v1/jobs/{id}`, inside the API process, by one
regex alternating every hotword (seconds of CPU for a long transcript, every other request of
that process waiting). Now the worker stores them when the job ends and a read returns them.
The attack: a set of 1,000 words (the transcript's own words among them, so there are hits),
a ~100 s recording transcribed with it, then 200 GETs of the finished job, one after another.
"""

from __future__ import annotations

import re
import time

import numpy as np
import requests
import soundfile

from bench.abuse_cases import Case
from bench.common import long_files
from tests.support.speech import REFERENCE_SENTENCES
from tests.support.stack import Stack, wait_for_job

SET_NAME = "abuse-1000"
SET_SIZE_WORDS = 1000
#: 25 sentences of about 4 s each: a recording of about 100 s.
SENTENCES = 25
GETS = 200
JOB_TIMEOUT_S = 900.0


def thousand_words() -> list[str]:
    """The reference sentences' words (so the transcript has hits), then made-up words."""
    spoken = sorted({w for s in REFERENCE_SENTENCES for w in re.findall(r"[a-z']+", s.lower())})
    made_up = [f"zorbex{index}" for index in range(SET_SIZE_WORDS - len(spoken))]
    return spoken + made_up


def get_finished_job_with_a_thousand_hotwords(stack: Stack) -> str:
    created = requests.put(stack.url(f"/v1/hotwords/{SET_NAME}"), data="\n".join(thousand_words()),
                           headers={"Content-Type": "text/plain"}, timeout=30)
    created.raise_for_status()
    recording = long_files(1, SENTENCES)[0]
    duration_s = soundfile.info(str(recording)).duration
    with recording.open("rb") as audio:
        submitted = requests.post(stack.url("/v1/jobs"), files={"audio": (recording.name, audio)},
                                  data={"hotword_set": SET_NAME}, timeout=60)
    submitted.raise_for_status()
    job = wait_for_job(stack, submitted.json()["id"], timeout_s=JOB_TIMEOUT_S)
    if job["status"] != "succeeded":
        return f"job {job['status']}: {job.get('error')}"
    session = requests.Session()
    latencies_ms = []
    for _ in range(GETS):
        started_s = time.perf_counter()
        response = session.get(stack.url(f"/v1/jobs/{job['id']}"), timeout=30)
        latencies_ms.append((time.perf_counter() - started_s) * 1000)
        response.raise_for_status()
    hits = response.json()["result"]["hotword_hits"]
    return (f"GET p50 {np.percentile(latencies_ms, 50):.1f} ms, p99 {np.percentile(latencies_ms, 99):.1f} ms "
            f"({GETS} GETs; {duration_s:.0f} s job, {len(job['result']['text'])} chars, "
            f"{sum(hit['count'] for hit in hits)} hits of {len(hits)} words)")


def cases() -> list[Case]:
    return [Case(name="hotwords: GET a 100 s job with a 1,000-word set", goal="GET p99 <= 50 ms, /healthz unaffected",
                 attack=get_finished_job_with_a_thousand_hotwords)]
