"""API keys, tenant isolation and per-key limits, through a real stack with auth required.

Two tenants' keys, an admin key, and a second API process on the same Redis and database:
every job endpoint is tried across tenants, and the limits are crossed through both API
processes. Sentence jobs stay queued here (no sentence worker runs), which makes "jobs in
flight" deterministic; file jobs run on a real worker.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from shared.cli import commands
from shared.db.api_keys import ApiKeyRepository, KeyLimits
from shared.db.models import JobStatus
from shared.db.repository import STREAM_MODE, JobRepository
from shared.db.session import make_engine, make_session_factory
from tests.support.errors import error_message
from tests.support.job_rows import job_row
from tests.support.servers import free_port
from tests.support.speech import REFERENCE_SENTENCES, synthesize
from tests.support.stack import Stack, running_stack
from tests.support.ws_clients import open_ws

pytestmark = pytest.mark.integration

HASH_SECRET = "test-api-key-hash-secret"


@dataclass
class Tenants:
    stack: Stack
    keys: ApiKeyRepository
    jobs: JobRepository
    team_a: str
    team_b: str
    admin: str
    second_api_url: str

    def key(self, name: str, **limits: int) -> str:
        return self.keys.create(name, limits=KeyLimits(**limits))[1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Tenants]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("auth")
    (tmp / "sensitive-words").write_text("REPORT\n# a comment\nmonday\n", encoding="utf-8")
    with running_stack(tmp, redis_server.url, file_concurrency=1,
                       sentence_concurrency=0, auth_mode="required", api_key_hash_secret=HASH_SECRET,
                       stream_slot_wait_s=1.0, sensitive_words_path=tmp / "sensitive-words") as stack:
        factory = make_session_factory(make_engine(stack.settings.database_url))
        keys = ApiKeyRepository(factory, HASH_SECRET.encode())
        second = stack.settings.model_copy(update={"port": free_port()})
        stack.spawn("api-2", commands.api_argv(second, "http"))
        second_url = f"http://127.0.0.1:{second.port}"
        deadline_s = time.monotonic() + 60
        while time.monotonic() < deadline_s:
            try:
                if requests.get(f"{second_url}/healthz", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        yield Tenants(stack=stack, keys=keys, jobs=JobRepository(factory),
                      team_a=keys.create("team-a")[1], team_b=keys.create("team-b")[1],
                      admin=keys.create("ops", is_admin=True)[1], second_api_url=second_url)


@pytest.fixture(scope="module")
def clip(speech_dir: Path) -> Path:
    return synthesize(REFERENCE_SENTENCES[0], speech_dir / "auth-clip.wav")


def submit(url: str, key: str, clip: Path, **fields: str) -> requests.Response:
    with clip.open("rb") as audio:
        return requests.post(f"{url}/v1/jobs", headers=bearer(key), files={"audio": ("a.wav", audio)},
                             data=fields, timeout=60)


# --- refusals --------------------------------------------------------------------------


PROTECTED = [("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/abc"), ("DELETE", "/v1/jobs/abc"),
             ("GET", "/v1/jobs/abc/transcript"), ("GET", "/v1/jobs/abc/webhooks"),
             ("POST", "/v1/jobs/abc/webhooks/redeliver"), ("POST", "/v1/asr"), ("POST", "/v1/audio/transcriptions"),
             ("GET", "/v1/models"), ("GET", "/v1/keys"), ("GET", "/v1/no-such-route")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_route_refuses_a_missing_key_with_401(tenants: Tenants, method: str, path: str) -> None:
    response = requests.request(method, tenants.stack.url(path), timeout=10)
    assert response.status_code == 401
    assert "API key" in error_message(response.json())
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_or_revoked_key_is_401_and_never_echoed(tenants: Tenants) -> None:
    known_id = tenants.team_a.split("_")[2]
    wrong = f"oddasr_sk_{known_id}_{'x' * 43}"
    revoked_row, revoked = tenants.keys.create("short-lived")
    assert requests.get(tenants.stack.url("/v1/jobs"), headers=bearer(revoked), timeout=10).status_code == 200
    tenants.keys.revoke(revoked_row.id)
    for key in (wrong, "not-a-key", revoked, tenants.team_a + "x"):
        for headers in (bearer(key), {"X-API-Key": key}):
            response = requests.get(tenants.stack.url("/v1/jobs"), headers=headers, timeout=10)
            assert response.status_code == 401, key
            assert key not in response.text and "x" * 43 not in response.text
    assert "oddasr_sk_" not in tenants.stack.log_tail("api", 400)


def test_probes_are_public(tenants: Tenants) -> None:
    assert requests.get(tenants.stack.url("/healthz"), timeout=10).status_code == 200
    assert requests.get(tenants.stack.url("/readyz"), timeout=10).status_code in (200, 503)


def test_x_api_key_header_works_like_bearer(tenants: Tenants) -> None:
    response = requests.get(tenants.stack.url("/v1/jobs"), headers={"X-API-Key": tenants.team_a}, timeout=10)
    assert response.status_code == 200


# --- isolation ---------------------------------------------------------------------------


def test_another_tenants_job_is_404_on_every_endpoint_exactly_like_a_missing_one(
        tenants: Tenants, clip: Path) -> None:
    created = submit(tenants.stack.base_url, tenants.team_a, clip, callback_url="")
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert created.json()["api_key_id"] == tenants.team_a.split("_")[2]
    assert wait_for_job_as(tenants, job_id, tenants.team_a)["status"] == "succeeded"
    missing_id = "0" * 32
    for method, path in [("GET", "/v1/jobs/{}"), ("GET", "/v1/jobs/{}/transcript"), ("GET", "/v1/jobs/{}/audio"),
                         ("DELETE", "/v1/jobs/{}"),
                         ("GET", "/v1/jobs/{}/webhooks"), ("POST", "/v1/jobs/{}/webhooks/redeliver")]:
        theirs = requests.request(method, tenants.stack.url(path.format(job_id)), headers=bearer(tenants.team_b),
                                  timeout=10)
        missing = requests.request(method, tenants.stack.url(path.format(missing_id)),
                                   headers=bearer(tenants.team_b), timeout=10)
        assert theirs.status_code == missing.status_code == 404, (path, theirs.text)
        assert theirs.json()["error"].replace(job_id, "ID") == missing.json()["error"].replace(missing_id, "ID")
    # The owner and an admin still see it, and B's DELETE did not cancel or delete anything.
    own = requests.get(tenants.stack.url(f"/v1/jobs/{job_id}/transcript"), headers=bearer(tenants.team_a), timeout=10)
    assert own.status_code == 200 and own.text.strip()
    audio = requests.get(tenants.stack.url(f"/v1/jobs/{job_id}/audio"), headers=bearer(tenants.team_a), timeout=10)
    assert audio.status_code == 200 and audio.content == clip.read_bytes(), "the upload, byte for byte"
    assert audio.headers["Content-Type"] == "audio/x-wav" and audio.headers["Cache-Control"] == "private, no-store"
    admin = requests.get(tenants.stack.url(f"/v1/jobs/{job_id}"), headers=bearer(tenants.admin), timeout=10)
    assert admin.status_code == 200 and admin.json()["status"] == "succeeded"


def wait_for_job_as(tenants: Tenants, job_id: str, key: str, timeout_s: float = 120.0) -> dict:
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        job = requests.get(tenants.stack.url(f"/v1/jobs/{job_id}"), headers=bearer(key), timeout=10).json()
        if job["status"] in {"succeeded", "failed", "canceled"}:
            return job
        time.sleep(0.2)
    raise TimeoutError(job_id)


def _insert_jobs(tenants: Tenants, key: str, count: int, status: JobStatus = JobStatus.QUEUED) -> list[str]:
    """Jobs straight into the table (only listing is under test): `count` for `key`'s tenant."""
    key_id = key.split("_")[2]
    ids = []
    for _ in range(count):
        job_id = uuid.uuid4().hex
        tenants.jobs.create(job_row(job_id, status=status, mode="sentence", queue="nobody", filename="x.wav",
                                        size_bytes=1, duration_s=1.0, api_key_id=key_id))
        ids.append(job_id)
    return ids


def list_all(tenants: Tenants, key: str, **params: object) -> tuple[list[dict], int]:
    """Walk every page by following `next`, as a client would."""
    url = tenants.stack.url("/v1/jobs")
    seen: list[dict] = []
    total = -1
    while url:
        page = requests.get(url, headers=bearer(key), params=params if not seen else None, timeout=10).json()
        seen += page["jobs"]
        total = page["total"]
        url = tenants.stack.url(page["next"]) if page["next"] else ""
    return seen, total


def test_lists_filters_and_pages_show_only_the_callers_jobs(tenants: Tenants) -> None:
    key_c, key_d = tenants.key("team-c"), tenants.key("team-d")
    c_queued = set(_insert_jobs(tenants, key_c, 5))
    c_failed = set(_insert_jobs(tenants, key_c, 2, JobStatus.FAILED))
    d_queued = set(_insert_jobs(tenants, key_d, 3))
    jobs, total = list_all(tenants, key_c, limit=2)
    assert {j["id"] for j in jobs} == c_queued | c_failed and total == 7 and len(jobs) == 7
    jobs, total = list_all(tenants, key_c, status="failed", limit=1)
    assert {j["id"] for j in jobs} == c_failed and total == 2
    jobs, total = list_all(tenants, key_d, status="queued")
    assert {j["id"] for j in jobs} == d_queued and total == 3
    # A tenant cannot widen its view; an admin can see everyone's, or one tenant's.
    forbidden = requests.get(tenants.stack.url("/v1/jobs"), params={"api_key_id": key_d.split("_")[2]},
                             headers=bearer(key_c), timeout=10)
    assert forbidden.status_code == 403
    jobs, total = list_all(tenants, tenants.admin, api_key_id=key_d.split("_")[2], limit=2)
    assert {j["id"] for j in jobs} == d_queued and total == 3
    everyone = requests.get(tenants.stack.url("/v1/jobs"), headers=bearer(tenants.admin), timeout=10).json()
    assert everyone["total"] >= 10


def test_a_session_of_another_tenant_is_an_unknown_task(tenants: Tenants) -> None:
    key_id = tenants.team_a.split("_")[2]
    job_id = uuid.uuid4().hex
    tenants.jobs.create(job_row(job_id, status=JobStatus.SUCCEEDED, mode=STREAM_MODE, filename="live", duration_s=1.0,
                                progress=1.0, attempts=1, api_key_id=key_id))

    def start(key: str) -> dict:
        with open_ws(f"ws://127.0.0.1:{tenants.stack.settings.ws_port}/") as ws:
            ws.send(json.dumps({"name": "StartTranscription", "message_id": "m", "token": key, "task_id": job_id}))
            return json.loads(ws.recv(timeout=30))

    assert start(tenants.team_a)["header"]["status"] == 10020001  # known to its owner: ended
    assert start(tenants.team_b)["header"]["status"] == 10020003  # to anyone else: unknown


# --- websockets ------------------------------------------------------------------------


def ws_start(tenants: Tenants, token: str = "", query: str = "") -> dict:
    with open_ws(f"ws://127.0.0.1:{tenants.stack.settings.ws_port}/{query}") as ws:
        ws.send(json.dumps({"name": "StartTranscription", "message_id": "m", "token": token, "task_id": ""}))
        return json.loads(ws.recv(timeout=30))


def test_a_websocket_needs_a_key_in_the_token_the_query_or_a_header(tenants: Tenants) -> None:
    refused = ws_start(tenants)
    assert refused["header"]["status"] == 10020005 and "API key" in refused["header"]["status_text"]
    assert ws_start(tenants, token="oddasr_sk_00000000_nope")["header"]["status"] == 10020005
    # A valid key gets past authentication; no stream worker runs here, so the answer is "busy".
    assert ws_start(tenants, token=tenants.team_a)["header"]["status"] == 20020001
    assert ws_start(tenants, query=f"?api_key={tenants.team_b}")["header"]["status"] == 20020001


def funasr_start(tenants: Tenants, config: dict) -> dict:
    with open_ws(f"ws://127.0.0.1:{tenants.stack.settings.funasr_ws_port}/") as ws:
        ws.send(json.dumps({"mode": "2pass", "chunk_size": [5, 10, 5], "wav_name": "w", "is_speaking": True,
                            **config}))
        return json.loads(ws.recv(timeout=30))


def test_a_funasr_client_sends_its_key_in_the_config_frame(tenants: Tenants) -> None:
    refused = funasr_start(tenants, {})
    assert refused["error_kind"] == "unauthorized" and "api_key" in refused["error"]
    assert funasr_start(tenants, {"api_key": "oddasr_sk_00000000_nope"})["error_kind"] == "unauthorized"
    # Past authentication; no stream worker runs here, so the answer is "busy".
    assert funasr_start(tenants, {"api_key": tenants.team_a})["error_kind"] == "busy"


# --- keys over HTTP ---------------------------------------------------------------------


def test_key_administration_needs_an_admin_key(tenants: Tenants) -> None:
    url = tenants.stack.url("/v1/keys")
    assert requests.get(url, headers=bearer(tenants.team_a), timeout=10).status_code == 403
    assert requests.post(url, headers=bearer(tenants.team_a), json={"name": "x"}, timeout=10).status_code == 403
    created = requests.post(url, headers=bearer(tenants.admin), json={"name": "via-http", "max_jobs_in_flight": 3},
                            timeout=10)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"].startswith(f"oddasr_sk_{body['id']}_") and body["limits"]["max_jobs_in_flight"] == 3
    listed = requests.get(url, headers=bearer(tenants.admin), timeout=10).json()["keys"]
    assert body["id"] in {k["id"] for k in listed} and all("key" not in k and "secret_hash" not in k for k in listed)
    assert requests.get(tenants.stack.url("/v1/jobs"), headers=bearer(body["key"]), timeout=10).status_code == 200
    assert requests.delete(f"{url}/{body['id']}", headers=bearer(tenants.admin), timeout=10).json()["revoked_at"]
    assert requests.get(tenants.stack.url("/v1/jobs"), headers=bearer(body["key"]), timeout=10).status_code == 401
    bad = requests.post(url, headers=bearer(tenants.admin), json={"name": "", "admin": "yes"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]


# --- limits -----------------------------------------------------------------------------


def test_requests_per_minute_hold_across_two_api_processes(tenants: Tenants) -> None:
    key = tenants.key("chatty", requests_per_minute=6)
    urls = [tenants.stack.base_url, tenants.second_api_url]
    answers = [requests.get(f"{urls[i % 2]}/v1/jobs", headers=bearer(key), timeout=10) for i in range(8)]
    assert [a.status_code for a in answers[:6]] == [200] * 6
    refused = answers[6]
    assert refused.status_code == 429 and answers[7].status_code == 429
    assert "6 requests per minute" in refused.json()["error"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another key is not affected by this one's limit.
    assert requests.get(f"{urls[1]}/v1/jobs", headers=bearer(tenants.team_b), timeout=10).status_code == 200


def test_jobs_in_flight_are_capped_even_when_submitted_at_once_to_two_processes(
        tenants: Tenants, clip: Path) -> None:
    key = tenants.key("bursty", max_jobs_in_flight=2)
    urls = [tenants.stack.base_url, tenants.second_api_url]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda i: submit(urls[i % 2], key, clip, mode="sentence"), range(6)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [202, 202, 429, 429, 429, 429], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 429)
    assert "jobs in flight" in refused.json()["error"] and int(refused.headers["Retry-After"]) >= 1
    assert tenants.jobs.count_in_flight(key.split("_")[2]) == 2
    # Cancelling one frees a place.
    job_id = next(a.json()["id"] for a in answers if a.status_code == 202)
    assert requests.delete(tenants.stack.url(f"/v1/jobs/{job_id}"), headers=bearer(key), timeout=10).ok
    assert submit(urls[1], key, clip, mode="sentence").status_code == 202


def test_audio_seconds_per_day_are_counted_and_refused_past_the_limit(tenants: Tenants, clip: Path) -> None:
    import soundfile

    clip_s = soundfile.info(str(clip)).duration
    key = tenants.key("frugal", audio_seconds_per_day=int(clip_s * 2.5))
    assert submit(tenants.stack.base_url, key, clip, mode="sentence").status_code == 202
    assert submit(tenants.second_api_url, key, clip, mode="sentence").status_code == 202
    refused = submit(tenants.stack.base_url, key, clip, mode="sentence")
    assert refused.status_code == 429 and "audio seconds per day" in refused.json()["error"]
    assert int(refused.headers["Retry-After"]) > 0
    tiny = tenants.key("tiny", audio_seconds_per_day=1)
    too_long = submit(tenants.stack.base_url, tiny, clip, mode="sentence")
    assert too_long.status_code == 429 and "whole daily limit" in too_long.json()["error"]


def test_jobs_refused_for_their_place_in_flight_are_not_charged_audio(tenants: Tenants, clip: Path) -> None:
    """Submitted at once, all pass the early checks; only the one that gets the place pays."""
    import soundfile

    clip_s = soundfile.info(str(clip)).duration
    key = tenants.key("refused-pays-nothing", max_jobs_in_flight=1, audio_seconds_per_day=int(clip_s * 2.5))
    urls = [tenants.stack.base_url, tenants.second_api_url]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda i: submit(urls[i % 2], key, clip, mode="sentence"), range(6)))
    admitted = [a for a in answers if a.status_code == 202]
    refused = [a.json()["error"] for a in answers if a.status_code != 202]
    assert len(admitted) == 1 and len(refused) == 5 and all("jobs in flight" in e for e in refused), refused

    def cancel(answer: requests.Response) -> None:
        url = tenants.stack.url(f"/v1/jobs/{answer.json()['id']}")
        assert requests.delete(url, headers=bearer(key), timeout=10).ok

    cancel(admitted[0])
    second = submit(urls[1], key, clip, mode="sentence")  # the second clip of the day's 2.5
    assert second.status_code == 202, second.text
    cancel(second)
    spent = submit(urls[0], key, clip, mode="sentence")
    assert spent.status_code == 429 and "audio seconds per day" in spent.json()["error"]


def test_limits_answer_on_the_compatibility_endpoints_too(tenants: Tenants, clip: Path) -> None:
    key = tenants.key("legacy", max_jobs_in_flight=1)
    _insert_jobs(tenants, key, 1)
    with clip.open("rb") as audio:
        response = requests.post(tenants.stack.url("/v1/asr"), headers={"X-API-Key": key},
                                 files={"audio": ("a.wav", audio)}, timeout=60)
    assert response.status_code == 429 and "Retry-After" in response.headers


def test_the_job_of_a_refused_submission_is_not_stored(tenants: Tenants, clip: Path) -> None:
    key = tenants.key("nothing-stored", max_jobs_in_flight=1)
    _insert_jobs(tenants, key, 1)
    storage_dir = Path(tenants.stack.settings.storage_local_dir or "") / "audio"
    before = set(storage_dir.iterdir()) if storage_dir.exists() else set()
    assert submit(tenants.stack.base_url, key, clip).status_code == 429
    after = set(storage_dir.iterdir()) if storage_dir.exists() else set()
    assert after == before


def test_a_file_job_of_one_tenant_still_runs_end_to_end(tenants: Tenants, clip: Path) -> None:
    """The worker side does not care about keys: the whole path works with auth on."""
    created = submit(tenants.second_api_url, tenants.team_b, clip)
    assert created.status_code == 202
    job = wait_for_job_as(tenants, created.json()["id"], tenants.team_b)
    assert job["status"] == "succeeded" and "result" in job


def test_the_stream_command_says_when_it_needs_a_key(tenants: Tenants, clip: Path) -> None:
    import subprocess
    import sys

    env = {**tenants.stack.env, "ODDASR_API_KEY": ""}
    done = subprocess.run([sys.executable, "-m", "shared.cli.main", "stream", str(clip), "--server",
                           tenants.stack.base_url, "--speed", "10"], capture_output=True, text=True, timeout=60,
                          check=False, env=env)
    assert done.returncode == 1 and "API key" in done.stderr, done.stderr
    done = subprocess.run([sys.executable, "-m", "shared.cli.main", "transcribe", str(clip), "--server",
                           tenants.stack.base_url], capture_output=True, text=True, timeout=60, check=False, env=env)
    assert done.returncode != 0 and "401" in done.stderr
    done = subprocess.run([sys.executable, "-m", "shared.cli.main", "transcribe", str(clip), "--server",
                           tenants.stack.base_url, "--api-key", tenants.team_a], capture_output=True, text=True,
                          timeout=120, check=False, env=env)
    assert done.returncode == 0 and done.stdout.strip(), done.stderr


def test_sensitive_words_are_masked_in_every_format_and_only_admins_may_opt_out(
        tenants: Tenants, speech_dir: Path) -> None:
    """The clip says "Please send the report to my office before noon on Monday."; the list
    holds REPORT and monday (other case)."""
    clip = synthesize(REFERENCE_SENTENCES[1], speech_dir / "auth-report.wav")
    assert "report" in REFERENCE_SENTENCES[1] and "Monday" in REFERENCE_SENTENCES[1]
    created = submit(tenants.stack.base_url, tenants.team_a, clip)
    job = wait_for_job_as(tenants, created.json()["id"], tenants.team_a)
    assert "***" in job["result"]["text"] and "report" not in job["result"]["text"].lower()
    assert "monday" not in job["result"]["text"].lower()
    for fmt in ("txt", "srt", "vtt", "json", "spk"):
        body = requests.get(tenants.stack.url(f"/v1/jobs/{job['id']}/transcript"), params={"format": fmt},
                            headers=bearer(tenants.team_a), timeout=10).text
        assert "***" in body and "report" not in body.lower(), fmt
    refused = submit(tenants.stack.base_url, tenants.team_a, clip, mask_sensitive_words="false")
    assert refused.status_code == 403 and "admin" in refused.json()["error"]
    unmasked = submit(tenants.stack.base_url, tenants.admin, clip, mask_sensitive_words="false")
    assert unmasked.status_code == 202, unmasked.text
    job = wait_for_job_as(tenants, unmasked.json()["id"], tenants.admin)
    assert "report" in job["result"]["text"].lower() and "***" not in job["result"]["text"]


def test_hotword_sets_belong_to_their_key_and_a_job_reports_its_hits(tenants: Tenants, speech_dir: Path) -> None:
    clip = synthesize(REFERENCE_SENTENCES[1], speech_dir / "auth-report.wav")  # "...to my office before noon..."
    url = tenants.stack.url("/v1/hotwords/team-words")
    created = requests.put(url, data="office 50\nnoon 20\n", headers={**bearer(tenants.team_a),
                                                                      "Content-Type": "text/plain"}, timeout=10)
    assert created.status_code == 201, created.text
    assert requests.get(url, headers=bearer(tenants.team_b), timeout=10).status_code == 404
    assert requests.get(tenants.stack.url("/v1/hotwords"), headers=bearer(tenants.team_b),
                        timeout=10).json()["sets"] == []
    theirs = submit(tenants.stack.base_url, tenants.team_b, clip, hotword_set="team-words")
    assert theirs.status_code == 400 and "unknown hotword set" in theirs.json()["error"]
    job = wait_for_job_as(tenants, submit(tenants.stack.base_url, tenants.team_a, clip,
                                          hotword_set="team-words").json()["id"], tenants.team_a)
    assert job["options"]["hotwords"] == ["office", "noon"] and job["options"]["hotword_set_version"] == "1"
    hits = {hit["word"]: hit for hit in job["result"]["hotword_hits"]}
    assert hits["office"]["count"] >= 1 and hits["office"]["times"][0]["end"] > hits["office"]["times"][0]["start"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/models"), ("GET", "/v1/queues"), ("POST", "/v1/jobs"),
                                              ("GET", "/v1/jobs")])
def test_an_upgrade_header_on_a_plain_route_does_not_skip_authentication(tenants: Tenants, method: str,
                                                                         path: str) -> None:
    response = requests.request(method, tenants.stack.url(path), headers={"Upgrade": "websocket"},
                                files={"audio": ("a.wav", b"garbage")} if method == "POST" else None, timeout=10)
    assert response.status_code == 401, response.text
