"""docker-compose.yml, brought up from the built images, used as a user would, then brought down.

`make images-test` (scripts/images/test.sh) runs this module after it has built the images and
while it holds a Docker engine (DOCKER_HOST); it is not a test_*.py module, so the ordinary
suite never collects it. The stack is the operator's: the compose file as it is, its secrets in
the environment, the ports on 127.0.0.1 (free ones, through the file's port variables), the
first API key made with `docker compose exec api oddasr keys create`.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jiwer
import pytest
import requests
import soundfile
from standardwebhooks.webhooks import Webhook

from tests.support.speech import REFERENCE_SENTENCES, make_long_recording, synthesize
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import Receiver, running_receiver
from tests.support.ws_clients import funasr_session, oddasr_session, open_ws

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROJECT = os.environ.get("IMAGES_TEST_PROJECT", "oddasr-images-test")
#: Worker health checks start after their models load; the first start of a stack takes longest.
UP_TIMEOUT_S = 600
JOB_TIMEOUT_S = 300
WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
FLOWER_USER, FLOWER_PASSWORD = "admin", secrets.token_urlsafe(12)


@dataclass
class Deployment:
    env: dict[str, str]
    http_url: str
    oddasr_ws_url: str
    funasr_ws_url: str
    flower_url: str
    api_key: str
    receiver: Receiver

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def compose(env: dict[str, str], *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "compose", "-p", PROJECT, "-f", str(ROOT / "docker-compose.yml"), *args],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def operator_environment() -> dict[str, str]:
    """What an operator exports before `docker compose up` (README, "Deployment with docker
    compose"); webhooks may reach private networks, where the test's receiver is."""
    http_port, ws_port, funasr_port, flower_port = free_ports(4)
    return {
        **os.environ,
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "S3_ACCESS_KEY_ID": "oddasr-images-test",
        "S3_SECRET_ACCESS_KEY": secrets.token_urlsafe(24),
        "ODDASR_API_KEY_HASH_SECRET": secrets.token_urlsafe(32),
        "FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}",
        "ODDASR_WEBHOOK_SECRETS": WEBHOOK_SECRET,
        "ODDASR_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
        "API_HTTP_PORT": str(http_port), "API_WS_PORT": str(ws_port),
        "API_FUNASR_WS_PORT": str(funasr_port), "FLOWER_PORT": str(flower_port),
    }


def gateway_address(env: dict[str, str]) -> str:
    """The host's address on the compose network: where containers reach a server on the host."""
    network = f"{PROJECT}_default"
    result = subprocess.run(["docker", "network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}",
                             network], env=env, capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.strip()


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    env = operator_environment()
    try:
        up = compose(env, "up", "--detach", "--no-build", "--pull", "never", "--wait",
                     "--wait-timeout", str(UP_TIMEOUT_S), timeout_s=UP_TIMEOUT_S + 60)
        if up.returncode != 0:
            logs = compose(env, "logs", "--no-color", "--tail", "40").stdout
            pytest.fail(f"docker compose up failed:\n{up.stderr[-4000:]}\n{logs[-12000:]}")
        created = compose(env, "exec", "-T", "api", "oddasr", "keys", "create", "--name", "images-test")
        assert created.returncode == 0, created.stderr
        with running_receiver(gateway_address(env)) as receiver:
            yield Deployment(
                env=env, http_url=f"http://127.0.0.1:{env['API_HTTP_PORT']}",
                oddasr_ws_url=f"ws://127.0.0.1:{env['API_WS_PORT']}",
                funasr_ws_url=f"ws://127.0.0.1:{env['API_FUNASR_WS_PORT']}",
                flower_url=f"http://127.0.0.1:{env['FLOWER_PORT']}",
                api_key=created.stdout.strip(), receiver=receiver)
    finally:
        down = compose(env, "down", "--volumes", "--remove-orphans", timeout_s=300)
        assert down.returncode == 0, down.stderr


def wer(reference: str, hypothesis: str) -> float:
    def clean(text: str) -> str:
        return "".join(c for c in text.lower() if c.isalnum() or c.isspace())

    return jiwer.wer(clean(reference), clean(hypothesis))


@pytest.fixture(scope="module")
def two_sentences(speech_dir: Path) -> Path:
    return make_long_recording(REFERENCE_SENTENCES[:2], speech_dir / "images-two.wav", gap_s=1.2)


@pytest.fixture(scope="module")
def pcm(two_sentences: Path) -> bytes:
    samples, rate = soundfile.read(two_sentences, dtype="int16")
    assert rate == 16000
    return samples.tobytes()


def test_the_api_is_ready_and_refuses_requests_without_a_key(deployment: Deployment) -> None:
    ready = requests.get(f"{deployment.http_url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert requests.get(f"{deployment.http_url}/v1/jobs", timeout=10).status_code == 401


def test_a_file_job_with_a_webhook_to_the_host(deployment: Deployment, speech_dir: Path) -> None:
    clip = synthesize(REFERENCE_SENTENCES[3], speech_dir / "images-file.wav")
    with clip.open("rb") as audio:
        created = requests.post(f"{deployment.http_url}/v1/jobs", headers=deployment.headers(),
                                files={"audio": audio},
                                data={"callback_url": f"{deployment.receiver.url}/hook"}, timeout=60)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]

    def finished() -> dict | None:
        job = requests.get(f"{deployment.http_url}/v1/jobs/{job_id}", headers=deployment.headers(), timeout=10).json()
        return job if job["status"] in {"succeeded", "failed", "canceled"} else None

    job = wait_until(finished, "the file job to finish", timeout_s=JOB_TIMEOUT_S, interval_s=0.5)
    assert job["status"] == "succeeded", job
    text = requests.get(f"{deployment.http_url}/v1/jobs/{job_id}/transcript", params={"format": "txt"},
                        headers=deployment.headers(), timeout=10).text
    assert wer(REFERENCE_SENTENCES[3], text) < 0.3, text
    hooks = wait_until(lambda: deployment.receiver.received("/hook"), "the webhook on the host", timeout_s=60)
    event = Webhook(WEBHOOK_SECRET).verify(hooks[0].body, hooks[0].headers)
    assert event["type"] == "job.succeeded" and event["data"]["job_id"] == job_id


def test_a_sentence_job(deployment: Deployment, speech_dir: Path) -> None:
    clip = synthesize(REFERENCE_SENTENCES[4], speech_dir / "images-sentence.wav")
    with clip.open("rb") as audio:
        answer = requests.post(f"{deployment.http_url}/v1/asr/sentence", headers=deployment.headers(),
                               files={"audio": audio}, timeout=JOB_TIMEOUT_S)
    assert answer.status_code == 200, answer.text
    assert wer(REFERENCE_SENTENCES[4], answer.json()["text"]) < 0.3, answer.text


def test_a_live_session_in_oddasr_protocol(deployment: Deployment, two_sentences: Path) -> None:
    log = oddasr_session(f"{deployment.oddasr_ws_url}/v1/asr?api_key={deployment.api_key}", two_sentences)
    finals = [m["payload"]["result"] for m in log.named("SentenceEnd") if m["payload"]["result"] != "END"]
    assert finals, log.messages
    assert wer(" ".join(REFERENCE_SENTENCES[:2]), " ".join(finals)) < 0.35, finals


def test_a_live_session_in_funasr_protocol(deployment: Deployment, pcm: bytes) -> None:
    log = funasr_session(f"{deployment.funasr_ws_url}/?api_key={deployment.api_key}", pcm, realtime_factor=2.0)
    offline = [m["text"] for m in log.of_mode("2pass-offline")]
    assert offline, log.messages
    assert wer(" ".join(REFERENCE_SENTENCES[:2]), " ".join(offline)) < 0.35, offline


def test_a_live_session_in_native_protocol(deployment: Deployment, pcm: bytes) -> None:
    import json

    received: list[dict] = []
    with open_ws(f"{deployment.http_url.replace('http', 'ws')}/v1/stream?api_key={deployment.api_key}") as ws:
        ws.send(json.dumps({"type": "Start", "sample_rate": 16000, "language": "en", "name": "images-test"}))
        begin = json.loads(ws.recv(timeout=30))
        assert begin["type"] == "Begin", begin
        frame_bytes = 3200
        for offset in range(0, len(pcm), frame_bytes):
            ws.send(pcm[offset:offset + frame_bytes])
            time.sleep(frame_bytes / 32000 / 4)
        ws.send(json.dumps({"type": "Close"}))
        deadline_s = time.monotonic() + 120
        while time.monotonic() < deadline_s and (not received or received[-1]["type"] != "Summary"):
            received.append(json.loads(ws.recv(timeout=max(0.1, deadline_s - time.monotonic()))))
    finals = [m["text"] for m in received if m["type"] == "Final"]
    assert received and received[-1]["type"] == "Summary" and finals, received
    assert wer(" ".join(REFERENCE_SENTENCES[:2]), " ".join(finals)) < 0.35, finals


def test_flower_shows_the_workers_behind_basic_auth(deployment: Deployment) -> None:
    assert requests.get(f"{deployment.flower_url}/", timeout=10).status_code == 401
    auth = (FLOWER_USER, FLOWER_PASSWORD)

    def workers() -> list[str]:
        # refresh: Flower asks the workers now instead of answering from its last poll.
        answer = requests.get(f"{deployment.flower_url}/api/workers", params={"refresh": 1}, auth=auth, timeout=30)
        answer.raise_for_status()
        return list(answer.json())

    seen: list[list[str]] = []

    def both_kinds() -> list[str] | None:
        seen.append(names := workers())
        return names if {"worker", "webhooks"} <= {name.split("@")[0] for name in names} else None

    try:
        wait_until(both_kinds, "Flower to list the CPU and webhook workers", timeout_s=60, interval_s=1.0)
    except TimeoutError:
        pytest.fail(f"Flower listed {seen[-1]}")


def test_metrics_count_the_requests_and_the_queues(deployment: Deployment) -> None:
    answer = requests.get(f"{deployment.http_url}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    assert "oddasr_" in answer.text
