"""`enable_https` puts TLS on the websocket ports (FunASR's client defaults to wss) while the
HTTP API stays plain: the websocket ports get a gunicorn process of their own."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import soundfile
from websockets.exceptions import InvalidMessage

from tests.support.speech import REFERENCE_SENTENCES, synthesize
from tests.support.stack import Stack, running_stack
from tests.support.ws_clients import funasr_session, open_ws

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server, certificate) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    cert, key = certificate
    with running_stack(tmp_path_factory.mktemp("tlsstack"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=1, enable_https=True, ssl_cert_path=str(cert),
                       ssl_key_path=str(key)) as stack:
        stack.start_stream_workers(1)
        stack.wait_stream_slots(1)
        yield stack


def test_funasr_client_over_wss_while_http_stays_plain(stack: Stack, speech_dir: Path) -> None:
    wav = synthesize(REFERENCE_SENTENCES[1], speech_dir / "tls-one.wav")
    samples, _ = soundfile.read(wav, dtype="int16")
    log = funasr_session(f"wss://127.0.0.1:{stack.settings.funasr_ws_port}/", samples.tobytes(), mode="offline",
                         realtime_factor=20.0)
    assert len(log.of_mode("offline")) == 1 and log.of_mode("offline")[0]["text"]
    assert requests.get(stack.url("/healthz"), timeout=5).status_code == 200
    with pytest.raises((InvalidMessage, ConnectionError, OSError)):
        open_ws(f"ws://127.0.0.1:{stack.settings.funasr_ws_port}/").close()  # plain text is refused on a TLS port


def test_https_api_serves_the_api_the_page_and_its_websocket_over_tls(stack: Stack, certificate) -> None:  # type: ignore[no-untyped-def]
    """`https_api`: the page's microphone needs https when opened from another machine."""
    cert, _ = certificate
    url, settings = stack.start_api("api-https", https_api=True)
    assert url.startswith("https://")
    assert requests.get(f"{url}/healthz", verify=str(cert), timeout=10).status_code == 200
    page = requests.get(f"{url}/", verify=str(cert), timeout=10)
    assert page.status_code == 200 and "OddASR" in page.text
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{settings.port}/healthz", timeout=10)  # plain text is refused
    with open_ws(f"wss://127.0.0.1:{settings.port}/v1/stream") as ws:  # the page's live session
        ws.send(json.dumps({"type": "Start"}))
        assert json.loads(ws.recv(timeout=30))["type"] == "Begin"
        ws.send(json.dumps({"type": "Close"}))
        while json.loads(ws.recv(timeout=30))["type"] != "Summary":
            pass


def _cli(settings_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ODDASR_", "REQUESTS_CA", "SSL_CERT"))}
    return subprocess.run([sys.executable, "-m", "shared.cli.main", *args], env={**env, **settings_env},
                          capture_output=True, text=True, timeout=300)


def test_the_cli_talks_to_an_https_api_trusting_its_self_signed_certificate(
        stack: Stack, certificate, speech_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """`oddasr transcribe`, `stream` and `health` find this config's https API and trust its
    self-signed certificate (ssl_cert_path); another server needs --ca-cert."""
    cert, key = certificate
    url, settings = stack.start_api("api-https-cli", https_api=True)
    config = {"ODDASR_HOST": "127.0.0.1", "ODDASR_PORT": str(settings.port), "ODDASR_HTTPS_API": "true",
              "ODDASR_ENABLE_HTTPS": "true", "ODDASR_SSL_CERT_PATH": str(cert), "ODDASR_SSL_KEY_PATH": str(key),
              "ODDASR_DATA_DIR": str(stack.settings.data_dir)}
    clip = synthesize(REFERENCE_SENTENCES[1], speech_dir / "tls-cli.wav")
    done = _cli(config, "transcribe", str(clip))
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-2000:]
    streamed = _cli(config, "stream", str(clip), "--speed", "4", "--language", "en")
    assert streamed.returncode == 0 and "1 sentence" in streamed.stderr, streamed.stderr[-2000:]
    assert _cli(config, "health").returncode == 0
    # Another server (here: the same one by another name) is checked against the system's store...
    refused = _cli(config, "transcribe", str(clip), "--server", url.replace("127.0.0.1", "localhost"))
    assert refused.returncode == 1 and "certificate" in refused.stderr.lower(), refused.stderr[-2000:]
    # ... unless told which CA signed it.
    told = _cli(config, "transcribe", str(clip), "--server", url, "--ca-cert", str(cert))
    assert told.returncode == 0, told.stderr[-2000:]
