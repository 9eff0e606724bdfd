"""Prometheus metrics through real processes: the API's /metrics (gunicorn, gevent), the
file and sentence Celery nodes' metrics ports (prefork children) and the stream worker
supervisor's port, scraped before and after real jobs and a real live session."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from shared.config import QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.schemas import TRANSCRIBE_TASK_NAME
from tests.support.job_rows import job_row
from tests.support.servers import free_port
from tests.support.speech import REFERENCE_SENTENCES, synthesize
from tests.support.stack import Stack, running_stack, wait_for_job
from tests.support.ws_clients import open_ws

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _port_pair_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port + 1))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A free port whose next port is free too (the two worker nodes' metrics ports)."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and _port_pair_free(port):
            return port
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    # Two API processes: every count below must be the sum over both (multiprocess mode).
    with running_stack(tmp_path_factory.mktemp("metrics-stack"), redis_server.url, file_concurrency=1, api_processes=2,
                       worker_metrics_port=free_port_pair(), stream_worker_metrics_port=free_port(),
                       stream_idle_timeout_s=2.0) as running:
        running.start_stream_workers(1)
        running.wait_stream_slots(1)
        yield running


def scrape(url: str) -> Samples:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain"), response.headers
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the series whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, series), v in samples.items() if n == name and wanted <= series)


def api_metrics(stack: Stack) -> Samples:
    return scrape(stack.url("/metrics"))


def file_worker_metrics(stack: Stack) -> Samples:
    return scrape(f"http://127.0.0.1:{stack.settings.worker_metrics_port}/metrics")


def sentence_worker_metrics(stack: Stack) -> Samples:
    return scrape(f"http://127.0.0.1:{stack.settings.worker_metrics_port + 1}/metrics")


def stream_worker_metrics(stack: Stack) -> Samples:
    return scrape(f"http://127.0.0.1:{stack.settings.stream_worker_metrics_port}/metrics")


@pytest.fixture(scope="module")
def clip(speech_dir: Path) -> Path:
    return synthesize(REFERENCE_SENTENCES[0], speech_dir / "s0.wav")


def post_job(stack: Stack, path: Path, **fields: str) -> str:
    with path.open("rb") as audio:
        response = requests.post(stack.url("/v1/jobs"), files={"audio": (path.name, audio)}, data=fields, timeout=60)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_every_endpoint_answers_with_its_metrics(stack: Stack) -> None:
    api = api_metrics(stack)
    for queue in (QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE):
        assert ("oddasr_queue_messages", frozenset({("queue", queue)})) in api
        assert ("oddasr_jobs_queued", frozenset({("queue", queue)})) in api
    assert value(api, "oddasr_stream_slots", state="idle") == 1
    assert value(api, "oddasr_websockets_open") == 0
    # Each node's children loaded their engine once, and say so on the node's own port.
    assert value(file_worker_metrics(stack), "oddasr_model_load_seconds_count") == 1
    assert value(sentence_worker_metrics(stack), "oddasr_model_load_seconds_count") == 1
    stream = stream_worker_metrics(stack)
    assert value(stream, "oddasr_model_load_seconds_count") == 1
    assert value(stream, "oddasr_stream_sessions_active") == 0


def test_jobs_move_the_counters_and_histograms(stack: Stack, clip: Path) -> None:
    api_before, file_before = api_metrics(stack), file_worker_metrics(stack)
    sentence_before = sentence_worker_metrics(stack)
    file_job = wait_for_job(stack, post_job(stack, clip))
    sentence_job = wait_for_job(stack, post_job(stack, clip, mode="sentence"))
    assert file_job["status"] == sentence_job["status"] == "succeeded", (file_job, sentence_job)
    assert requests.get(stack.url(f"/v1/jobs/{uuid.uuid4().hex}"), timeout=10).status_code == 404
    assert requests.get(stack.url("/no/such/path"), timeout=10).status_code == 404
    api_after, file_after = api_metrics(stack), file_worker_metrics(stack)
    sentence_after = sentence_worker_metrics(stack)

    def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    file_labels = {"queue": QUEUE_CPU, "mode": "file"}
    assert grew(file_before, file_after, "oddasr_jobs_finished_total", status="succeeded", **file_labels) == 1
    assert grew(file_before, file_after, "oddasr_audio_processed_seconds_total", **file_labels) == pytest.approx(
        file_job["audio_duration_s"], abs=0.1)
    for histogram in ("oddasr_job_queue_wait_seconds", "oddasr_job_processing_seconds", "oddasr_job_real_time_factor"):
        assert grew(file_before, file_after, f"{histogram}_count", **file_labels) == 1, histogram
    processing_s = grew(file_before, file_after, "oddasr_job_processing_seconds_sum", **file_labels)
    assert 0 < processing_s <= file_job["processing_s"] + 0.01
    sentence_labels = {"queue": QUEUE_SENTENCE, "mode": "sentence"}
    assert grew(sentence_before, sentence_after, "oddasr_jobs_finished_total", status="succeeded",
                **sentence_labels) == 1
    assert grew(sentence_before, sentence_after, "oddasr_audio_processed_seconds_total", **sentence_labels) > 1
    # The API: two 202s on the jobs route, polls on the job route (labelled by its rule, never
    # by the job's id), the unknown job and the unknown path.
    assert grew(api_before, api_after, "oddasr_http_requests_total", route="/v1/jobs", method="POST",
                status="202") == 2
    assert grew(api_before, api_after, "oddasr_http_requests_total", route="/v1/jobs/<job_id>", method="GET",
                status="200") >= 2
    assert grew(api_before, api_after, "oddasr_http_requests_total", route="/v1/jobs/<job_id>", status="404") == 1
    assert grew(api_before, api_after, "oddasr_http_requests_total", route="<unmatched>", status="404") == 1
    assert grew(api_before, api_after, "oddasr_http_request_duration_seconds_count", route="/v1/jobs",
                method="POST") == 2
    routes = {dict(series).get("route") for (_name, series) in api_after}
    assert not any(file_job["id"] in (route or "") for route in routes), routes


def _insert_job(stack: Stack, queue: str, audio_key: str) -> str:
    jobs = JobRepository(make_session_factory(make_engine(stack.settings.database_url)))
    job_id = uuid.uuid4().hex
    jobs.create(job_row(job_id, queue=queue, audio_key=audio_key, filename="gone.wav"))
    return job_id


def _send(stack: Stack, job_id: str, queue: str) -> None:
    from shared.celery_factory import make_celery

    make_celery(stack.settings, name="metrics-test").send_task(TRANSCRIBE_TASK_NAME, args=[job_id], queue=queue,
                                                               task_id=job_id)


def test_a_failed_job_counts_as_failed(stack: Stack) -> None:
    before = file_worker_metrics(stack)
    # Its audio is not in storage (deleted before the worker read it): the job fails.
    job_id = _insert_job(stack, QUEUE_CPU, f"audio/{uuid.uuid4().hex}")
    _send(stack, job_id, QUEUE_CPU)
    job = wait_for_job(stack, job_id)
    assert job["status"] == "failed" and "missing" in job["error"], job
    after = file_worker_metrics(stack)
    labels = {"queue": QUEUE_CPU, "mode": "file", "status": "failed"}
    assert value(after, "oddasr_jobs_finished_total", **labels) - value(
        before, "oddasr_jobs_finished_total", **labels) == 1


def test_backlog_of_a_queue_no_worker_serves(stack: Stack) -> None:
    before = api_metrics(stack)
    job_id = _insert_job(stack, QUEUE_GPU, "audio/never-read")
    _send(stack, job_id, QUEUE_GPU)
    after = api_metrics(stack)
    for name in ("oddasr_jobs_queued", "oddasr_queue_messages"):
        assert value(after, name, queue=QUEUE_GPU) - value(before, name, queue=QUEUE_GPU) == 1, name


def test_a_live_session_counts_websockets_sessions_and_first_partial(stack: Stack, clip: Path) -> None:
    import soundfile

    samples, rate = soundfile.read(clip, dtype="int16")
    assert rate == 16000
    pcm = samples.tobytes()
    before = stream_worker_metrics(stack)
    with open_ws(f"ws://127.0.0.1:{stack.settings.port}/v1/stream") as ws:
        ws.send(json.dumps({"type": "Start", "sample_rate": 16000, "language": "en"}))
        begin = json.loads(ws.recv(timeout=30))
        assert begin["type"] == "Begin", begin
        assert value(api_metrics(stack), "oddasr_websockets_open") == 1
        assert value(stream_worker_metrics(stack), "oddasr_stream_sessions_active") == 1
        for offset in range(0, len(pcm), 6400):
            ws.send(pcm[offset:offset + 6400])
            time.sleep(0.05)
        ws.send(json.dumps({"type": "Close"}))
        deadline_s = time.monotonic() + 60
        while json.loads(ws.recv(timeout=max(0.1, deadline_s - time.monotonic())))["type"] != "Summary":
            pass
    job = wait_for_job(stack, begin["job_id"])
    assert job["status"] == "succeeded", job
    stack.wait_stream_slots(1, timeout_s=30)
    after = stream_worker_metrics(stack)
    assert value(after, "oddasr_stream_sessions_active") == 0
    assert value(after, "oddasr_stream_first_partial_seconds_count") - value(
        before, "oddasr_stream_first_partial_seconds_count") == 1
    labels = {"queue": "stream", "mode": "stream", "status": "succeeded"}
    assert value(after, "oddasr_jobs_finished_total", **labels) - value(
        before, "oddasr_jobs_finished_total", **labels) == 1
    deadline_s = time.monotonic() + 10  # the API's side of the socket closes just after the client's
    while value(api_metrics(stack), "oddasr_websockets_open") != 0:
        assert time.monotonic() < deadline_s, "the API still counts the closed websocket as open"
        time.sleep(0.2)


@pytest.mark.parametrize("require_key", [False, True])
def test_metrics_is_public_unless_a_key_is_required(tmp_path: Path, redis_server, require_key: bool) -> None:  # type: ignore[no-untyped-def]
    from api.app import create_app
    from shared.config import Settings
    from shared.db.api_keys import ApiKeyRepository
    from shared.db.migrate import upgrade_to_head

    secret = "metrics-test-hash-secret"
    settings = Settings(data_dir=tmp_path, redis_url=redis_server.url, auth_mode="required",
                        api_key_hash_secret=secret, metrics_require_key=require_key)
    upgrade_to_head(settings.database_url)
    keys = ApiKeyRepository(make_session_factory(make_engine(settings.database_url)), secret.encode())
    tenant, admin = keys.create("tenant")[1], keys.create("ops", is_admin=True)[1]
    client = create_app(settings).test_client()
    assert client.get("/v1/jobs").status_code == 401  # the API itself needs a key either way
    anonymous = client.get("/metrics")
    if not require_key:
        assert anonymous.status_code == 200 and b"oddasr_http_requests_total" in anonymous.data
        return
    assert anonymous.status_code == 401, anonymous.data
    assert client.get("/metrics", headers={"Authorization": f"Bearer {tenant}"}).status_code == 403
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
    assert scraped.status_code == 200 and b"oddasr_jobs_queued" in scraped.data


def test_compose_prometheus_scrapes_every_service_on_its_metrics_port() -> None:
    import yaml

    from shared.config import Settings

    root = Path(__file__).resolve().parents[1]
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    prometheus = compose["services"]["prometheus"]
    assert prometheus["profiles"] == ["metrics"]
    config_file = compose["configs"][prometheus["configs"][0]["source"]]["file"]
    scrape = yaml.safe_load((root / config_file).read_text())
    targets = {(sd["names"][0], sd["port"]) for job in scrape["scrape_configs"] for sd in job["dns_sd_configs"]}
    defaults = Settings()
    assert targets == {("api", defaults.port), ("worker-cpu", defaults.worker_metrics_port),
                       ("worker-gpu", defaults.worker_metrics_port),
                       ("worker-stream", defaults.stream_worker_metrics_port),
                       ("worker-webhooks", defaults.webhook_worker_metrics_port)}
    assert compose["x-oddasr-env"]["ODDASR_METRICS_HOST"] == "0.0.0.0"


def readme_queries() -> list[str]:
    """The example queries of the README's Metrics section, one a line."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("```promql\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_queries_answer_on_a_real_prometheus_scraping_every_endpoint(
        stack: Stack, clip: Path, tmp_path: Path) -> None:
    """Debian's Prometheus with deploy/prometheus.yml, its Docker DNS lookups swapped for this
    stack's addresses: every target is up, and every query in the README parses and answers
    with data (a misspelt metric would answer with nothing)."""
    import yaml

    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed (make test installs it: scripts/install-system-packages.sh)")
    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "deploy" / "prometheus.yml").read_text())
    port = stack.settings.worker_metrics_port
    here = {"api": [f"127.0.0.1:{stack.settings.port}"],
            "worker-cpu": [f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"],
            "worker-stream": [f"127.0.0.1:{stack.settings.stream_worker_metrics_port}"]}
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s"}
    config["scrape_configs"] = [
        {**{k: v for k, v in job.items() if k != "dns_sd_configs"},
         "static_configs": [{"targets": here[job["job_name"]]}]}
        for job in config["scrape_configs"] if job["job_name"] in here]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    web = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "prometheus.log").open("wb")
    server = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                               f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address={web}"],
                              stdout=log, stderr=subprocess.STDOUT)

    def query(promql: str) -> list[dict]:
        answer = requests.get(f"http://{web}/api/v1/query", params={"query": promql}, timeout=10).json()
        assert answer["status"] == "success", (promql, answer)
        return list(answer["data"]["result"])

    try:
        deadline_s = time.monotonic() + 60
        while True:
            try:
                up = query("up")
                if len(up) == 4 and all(series["value"][1] == "1" for series in up):
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline_s, (tmp_path / "prometheus.log").read_text()[-2000:]
            time.sleep(0.5)
        # Work after the first scrapes, so that every rate() has something to show.
        wait_for_job(stack, post_job(stack, clip))
        wait_for_job(stack, post_job(stack, clip, mode="sentence"))
        with open_ws(f"ws://127.0.0.1:{stack.settings.port}/v1/stream") as ws:
            ws.send(json.dumps({"type": "Start"}))
            assert json.loads(ws.recv(timeout=30))["type"] == "Begin"
            for _ in range(25):  # scraped while the session is open (silence keeps it so)
                ws.send(b"\0" * 3200)
                time.sleep(0.1)
            ws.send(json.dumps({"type": "Close"}))
            while json.loads(ws.recv(timeout=30))["type"] != "Summary":
                pass

        def unanswered() -> list[str]:
            """What Prometheus cannot answer yet: it shows the work only after its next scrapes."""
            missing = []
            for promql in readme_queries():
                result = query(promql)
                if promql.startswith("up{") and result:
                    missing.append(f"a worker is down: {result}")
                elif not promql.startswith("up{") and not result:
                    missing.append(f"no data for {promql!r}")
            return missing

        deadline_s = time.monotonic() + 120
        while missing := unanswered():
            assert time.monotonic() < deadline_s, missing
            time.sleep(0.5)
        per_queue = {series["metric"]["queue"] for series in query(readme_queries()[0])}
        assert {QUEUE_CPU, QUEUE_SENTENCE} <= per_queue
    finally:
        server.terminate()
        server.wait(timeout=30)
