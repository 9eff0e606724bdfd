"""Property-based fuzzing of the whole HTTP API against its published OpenAPI document.

Schemathesis reads /openapi.json from a real stack (gunicorn API, a Celery worker with the
real Whisper tiny.en, a real redis-server, SQLite, local storage), generates requests for
every operation, valid and invalid ones, and checks each answer: no 5xx, a documented status,
a body and Content-Type and headers that match the document. Afterwards every process of the
stack must still be alive and /readyz ready. Garbage sent as audio must answer 4xx (415, 422,
400): that it never reaches a worker, or kills one, is part of the point.

Bounded: a fixed number of examples per operation and phase, derandomized, so the run takes
about the same time (and the same number of requests) every time.

Auth: the run is with auth off, the default. With FUZZ_AUTH_MODE = "required" the stack
starts with keys required, the fixture makes an admin key (as `oddasr keys create --admin`
would) and every request carries it in `Authorization: Bearer`; the document then has no
anonymous security alternative, so schemathesis also checks that requests without the key
are refused.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile

from shared.db.api_keys import ApiKeyRepository
from shared.db.session import make_engine, make_session_factory
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.integration

#: "off" (the default deployment) or "required" (every request carries an admin key).
FUZZ_AUTH_MODE = "off"
HASH_SECRET = "fuzz-api-key-hash-secret"
#: Examples per operation and generation phase: the bound that keeps the run under a minute.
MAX_EXAMPLES_PER_OPERATION = 500
REQUEST_TIMEOUT_S = 60.0
#: Operations whose valid requests may still be refused: a schema can say "binary", not
#: "bytes that decode as audio", so generated audio is answered 415/422/400 by design.
UPLOAD_PATH_REGEX = "^/v1/(jobs|asr|asr/file|asr/sentence|audio/transcriptions|speakers)$"
#: How often a path parameter is one that exists (a real job, key or file) instead of a generated one.
KNOWN_VALUE_PROBABILITY = 0.5
#: A hard stop for the schemathesis run, far above its usual time.
FUZZ_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, own_redis) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    overrides: dict[str, object] = {"auth_mode": FUZZ_AUTH_MODE}
    if FUZZ_AUTH_MODE == "required":
        overrides["api_key_hash_secret"] = HASH_SECRET
    with running_stack(tmp_path_factory.mktemp("fuzz"), own_redis.url, file_concurrency=1, sentence_concurrency=0,
                       sync_wait_timeout_s=30.0, **overrides) as running:
        yield running


@pytest.fixture(scope="module")
def auth_headers(stack: Stack) -> dict[str, str]:
    """An admin key's header where keys are required; none where auth is off."""
    if stack.settings.auth_mode != "required":
        return {}
    keys = ApiKeyRepository(make_session_factory(make_engine(stack.settings.database_url)), HASH_SECRET.encode())
    return {"Authorization": f"Bearer {keys.create('fuzz', is_admin=True)[1]}"}


def tone_wav(duration_s: float = 1.0, sample_rate_hz: int = 16000) -> bytes:
    t = np.arange(int(duration_s * sample_rate_hz)) / sample_rate_hz
    buffer = io.BytesIO()
    soundfile.write(buffer, 0.2 * np.sin(2 * np.pi * 440 * t), sample_rate_hz, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def seeded_jobs(stack: Stack, auth_headers: dict[str, str]) -> dict[str, str]:
    """Real jobs for the fuzzer to reach past the 404 branch: a succeeded one whose transcript
    it renders in every format, a canceled one, and a succeeded one for DELETE (which deletes a
    job's data), so the first keeps its transcript for most of the run."""
    ids = {}
    for name in ("succeeded", "canceled", "doomed"):
        response = requests.post(stack.url("/v1/jobs"), files={"audio": ("tone.wav", tone_wav())},
                                 headers=auth_headers, timeout=REQUEST_TIMEOUT_S)
        assert response.status_code == 202, response.text
        ids[name] = response.json()["id"]
    for name in ("succeeded", "doomed"):
        deadline_s = time.monotonic() + 120
        while (job := requests.get(stack.url(f"/v1/jobs/{ids[name]}"), headers=auth_headers, timeout=10).json())[
                "status"] in {"queued", "running"} and time.monotonic() < deadline_s:
            time.sleep(0.2)
        assert job["status"] == "succeeded", job
    requests.delete(stack.url(f"/v1/jobs/{ids['canceled']}"), headers=auth_headers, timeout=REQUEST_TIMEOUT_S)
    return ids


@pytest.fixture(scope="module")
def known_values(stack: Stack, seeded_jobs: dict[str, str], auth_headers: dict[str, str]) -> dict[str, list[str]]:
    """Ids and names that exist, which the fuzzer mixes into the path parameters it generates
    (random ids alone only ever reach the 404 branch)."""
    created = requests.post(stack.url("/v1/keys"), json={"name": "fuzz-target"}, headers=auth_headers,
                            timeout=REQUEST_TIMEOUT_S)
    assert created.status_code == 201, created.text
    hotwords = requests.put(stack.url("/v1/hotwords/fuzz-set"), json={"words": [{"word": "OddASR", "weight": 20}]},
                            headers=auth_headers, timeout=REQUEST_TIMEOUT_S)
    assert hotwords.status_code == 201, hotwords.text
    page = requests.get(stack.url("/docs"), timeout=REQUEST_TIMEOUT_S).text
    assets = re.findall(r'(?:src|href)="docs/([^"]+)"', page)
    assert assets, page
    return {"job_id": [seeded_jobs["succeeded"], seeded_jobs["canceled"]], "doomed_job_id": [seeded_jobs["doomed"]],
            "key_id": [created.json()["id"]], "asset": assets, "name": ["fuzz-set"]}


def fuzz_config(known: dict[str, list[str]]) -> str:
    """schemathesis.toml for the run: every check, all generation modes, a fixed budget."""
    dictionaries = "\n".join(f"[dictionaries.{name}]\nvalues = {json.dumps(values)}\n"
                              for name, values in known.items())
    parameters = "\n".join(f'"path.{name}" = {{ dictionary = "{name}", probability = {KNOWN_VALUE_PROBABILITY} }}'
                            for name in known if name != "doomed_job_id")
    return f"""\
request-timeout = {REQUEST_TIMEOUT_S}
suppress-health-check = ["all"]

[generation]
max-examples = {MAX_EXAMPLES_PER_OPERATION}
deterministic = true

[cache]
enabled = false

# A canceled job's transcript is gone (410) however well formed the request: like 404 and 409, state.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "410", "429"]

[phases.stateful]
enabled = false

{dictionaries}
[parameters]
{parameters}

# DELETE /v1/jobs/{{job_id}} deletes a job's data: it gets a job of its own.
[[operations]]
include-method = "DELETE"
include-path = "/v1/jobs/{{job_id}}"
parameters = {{ "path.job_id" = {{ dictionary = "doomed_job_id", probability = {KNOWN_VALUE_PROBABILITY} }} }}

# The fuzzer cannot make bytes that decode as audio: valid-looking uploads are refused by design.
[[operations]]
include-method = "POST"
include-path-regex = "{UPLOAD_PATH_REGEX}"
checks.positive_data_acceptance.enabled = false

# A hotword set may be the original's text format, whose rules (a trailing weight 0-100, comment
# lines, a word that is only digits) no schema states: a well-formed body may still be a 400.
[[operations]]
include-method = "PUT"
include-path = "/v1/hotwords/{{name}}"
checks.positive_data_acceptance.enabled = false
"""


@pytest.mark.timeout(FUZZ_TIMEOUT_S + 120)
def test_every_answer_matches_the_document(stack: Stack, known_values: dict[str, list[str]],
                                           auth_headers: dict[str, str], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str], record_property) -> None:  # type: ignore[no-untyped-def]
    config_path = tmp_path / "schemathesis.toml"
    config_path.write_text(fuzz_config(known_values))
    har_path = tmp_path / "fuzz.har"
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_path), "run",
               stack.url("/openapi.json"), "--mode", "all", "--workers", "1",
               "--phases", "examples,coverage,fuzzing", "--report", "har", "--report-har-path", str(har_path),
               "--no-color"]
    for name, value in auth_headers.items():
        command += ["--header", f"{name}: {value}"]
    started_s = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=FUZZ_TIMEOUT_S, check=False,
                            cwd=tmp_path)
    elapsed_s = time.monotonic() - started_s
    entries = json.loads(har_path.read_text())["log"]["entries"] if har_path.exists() else []
    statuses = Counter(entry["response"]["status"] for entry in entries)
    line = (f"API fuzz: {len(entries)} requests in {elapsed_s:.0f} s; answers by status:"
            f" {dict(sorted(statuses.items()))}")
    with capsys.disabled():  # the count is the run's report: shown even when the test passes
        sys.stdout.write(f"\n{line}\n")
    record_property("fuzz_requests", len(entries))
    assert result.returncode == 0, f"{line}\n{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
    assert len(entries) > 1000, result.stdout[-5000:]
    assert not [status for status in statuses if status >= 500]
    rendered = {entry["response"]["content"]["mimeType"] for entry in entries
                if re.search(r"/v1/jobs/[^/]+/transcript", entry["request"]["url"])
                and entry["response"]["status"] == 200}
    assert len(rendered) >= 3, f"the transcript was rendered in too few formats: {rendered}"


def test_the_stack_survived_the_fuzzing(stack: Stack) -> None:
    """Runs after the fuzzing (file order): every process is alive and the API is ready."""
    for name, process in stack.processes.items():
        assert process.poll() is None, f"{name} died:\n{stack.log_tail(name)}"
    deadline_s = time.monotonic() + 30
    while (ready := requests.get(stack.url("/readyz"), timeout=10)).status_code != 200:
        assert time.monotonic() < deadline_s, ready.text
        time.sleep(0.5)
    assert "Traceback" not in stack.log_tail("api", 5000), stack.log_tail("api", 200)
