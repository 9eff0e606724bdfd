"""Issue 17, items 2, 5 and 10, against a real gunicorn API: every body has a limit (chunked
or not), a page on another site cannot drive a local install (Host and Origin), and the small
leaks (/readyz details, Flower's command line, the HTTP API on the websocket ports)."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from api.host_guard import HostPolicy, host_name
from shared.cli import commands
from shared.config import Settings
from shared.db.api_keys import ApiKeyRepository
from shared.db.session import make_engine, make_session_factory
from tests.support.raw_http import CHUNK_BYTES, connect, handshake_status, read_answer, send_chunked
from tests.support.servers import free_port
from tests.support.stack import Stack, running_stack
from tests.support.ws_clients import open_ws

pytestmark = pytest.mark.integration

HASH_SECRET = "test-abuse-http-hash-secret"
PUBLIC_NAME = "asr.example.com"
HOSTILE_NAME = "rebind.attacker.example"
#: What a client may have pushed into the socket buffers before the server's 413 reaches it.
SENT_PAST_LIMIT_BYTES = 32 * 1024 * 1024


@dataclass
class Deployment:
    stack: Stack
    keyed_url: str
    keyed: Settings
    admin_key: str
    user_key: str


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Deployment]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("abuse-http")
    with running_stack(tmp, redis_server.url, file_concurrency=1, sentence_concurrency=0,
                       api_key_hash_secret=HASH_SECRET) as stack:
        # A second API with keys required, a public name, and a storage that cannot be reached
        # (its /readyz has an error whose text names the endpoint).
        keyed_url, keyed = stack.start_api(
            "api-keyed", auth_mode="required", allowed_hosts=[PUBLIC_NAME], storage_backend="s3",
            s3_endpoint_url=f"http://127.0.0.1:{free_port()}", s3_create_bucket=False)
        keys = ApiKeyRepository(make_session_factory(make_engine(stack.settings.database_url)), HASH_SECRET.encode())
        yield Deployment(stack=stack, keyed_url=keyed_url, keyed=keyed,
                         admin_key=keys.create("admin", is_admin=True)[1], user_key=keys.create("user")[1])


# --- item 2: every body has a limit, chunked or not ------------------------------------------


def test_a_chunked_hotword_set_over_its_limit_is_cut_off_with_413(deployment: Deployment) -> None:
    port = deployment.stack.settings.port
    status, answer, sent_bytes = send_chunked(port, "PUT", "/v1/hotwords/flood", 128 * 1024 * 1024,
                                              "Content-Type: text/plain\r\n")
    assert status in (413, 0), answer[:300]  # 0: reset right after the answer, which then may be lost
    if status:
        assert b"262144 bytes" in answer
    assert sent_bytes < SENT_PAST_LIMIT_BYTES, f"the server read {sent_bytes} bytes of a 256 KiB limit"
    assert requests.get(deployment.stack.url("/healthz"), timeout=10).status_code == 200


def test_a_declared_body_over_a_routes_limit_is_refused_before_it_is_read(deployment: Deployment) -> None:
    port = deployment.stack.settings.port
    sock = connect(port)
    try:
        sock.sendall((f"PUT /v1/hotwords/big HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\n"
                      f"Content-Length: {300 * 1024}\r\n\r\n").encode())
        status, answer = read_answer(sock)
    finally:
        sock.close()
    assert status == 413 and b"limit of 262144 bytes" in answer, answer


def test_a_small_chunked_hotword_set_still_works(deployment: Deployment) -> None:
    body = b"Alibaba 20\nDAMO 10\n"
    response = requests.put(deployment.stack.url("/v1/hotwords/chunked-ok"), data=iter([body[:7], body[7:]]),
                            headers={"Content-Type": "text/plain"}, timeout=30)
    assert response.status_code in (200, 201), response.text
    assert response.json()["count"] == 2


def test_json_routes_read_at_most_max_request_body_bytes(deployment: Deployment) -> None:
    port = deployment.stack.settings.port
    status, answer, sent_bytes = send_chunked(port, "POST", "/v1/keys", 128 * 1024 * 1024,
                                              "Content-Type: application/json\r\n")
    assert status in (413, 0), answer[:300]
    if status:
        assert f"limit of {deployment.stack.settings.max_request_body_bytes} bytes".encode() in answer
    assert sent_bytes < SENT_PAST_LIMIT_BYTES, f"the server read {sent_bytes} bytes of a 1 MiB limit"


# --- item 5: Host and Origin -------------------------------------------------------------------


def test_host_policy_rules() -> None:
    policy = HostPolicy.from_settings(Settings(allowed_hosts=f"{PUBLIC_NAME},.corp.example"))
    assert host_name("LocalHost:9002") == "localhost" and host_name("[::1]:9002") == "::1"
    assert host_name("example.com.") == "example.com"
    for allowed in ("localhost", "app.localhost", "127.0.0.1", "::1", "192.168.1.20", PUBLIC_NAME, "corp.example",
                    "a.corp.example", "", socket.gethostname().lower()):
        assert policy.allows_host(allowed), allowed
    for refused in (HOSTILE_NAME, "localhost.attacker.example", "corp.example.attacker.example"):
        assert not policy.allows_host(refused), refused
    assert policy.allows_origin("http://127.0.0.1:9002", "127.0.0.1")
    assert policy.allows_origin("http://192.168.1.20:9002", "192.168.1.20")  # the page came from here
    assert policy.allows_origin(f"https://{PUBLIC_NAME}", "127.0.0.1")
    for refused in (f"http://{HOSTILE_NAME}", "http://203.0.113.9", "null", ""):
        assert not policy.allows_origin(refused, "127.0.0.1"), refused
    assert HostPolicy.from_settings(Settings(allowed_hosts="null")).allows_origin("null", "127.0.0.1")
    anything = HostPolicy.from_settings(Settings(allowed_hosts="*"))
    assert anything.allows_host(HOSTILE_NAME) and anything.allows_origin("null", "x")


def test_a_rebound_host_name_is_refused_with_403(deployment: Deployment) -> None:
    stack = deployment.stack
    response = requests.get(stack.url("/v1/jobs"), headers={"Host": f"{HOSTILE_NAME}:{stack.settings.port}"},
                            timeout=10)
    assert response.status_code == 403
    assert "allowed_hosts" in response.json()["error"] and HOSTILE_NAME in response.json()["error"]
    for host in ("127.0.0.1", "localhost", f"localhost:{stack.settings.port}"):
        assert requests.get(stack.url("/v1/jobs"), headers={"Host": host}, timeout=10).status_code == 200


def test_an_operators_public_name_is_served(deployment: Deployment) -> None:
    headers = {"Host": PUBLIC_NAME, "Authorization": f"Bearer {deployment.user_key}"}
    assert requests.get(f"{deployment.keyed_url}/v1/jobs", headers=headers, timeout=10).status_code == 200
    headers["Host"] = "other.example.com"
    assert requests.get(f"{deployment.keyed_url}/v1/jobs", headers=headers, timeout=10).status_code == 403


def test_a_cross_site_form_post_is_refused(deployment: Deployment) -> None:
    stack = deployment.stack
    response = requests.post(stack.url("/v1/jobs"), files={"audio": ("a.wav", b"RIFF")},
                             headers={"Origin": f"http://{HOSTILE_NAME}"}, timeout=10)
    assert response.status_code == 403 and "Origin" in response.json()["error"]
    # The web page's own requests carry its origin: this server.
    same_site = requests.get(stack.url("/v1/jobs"), headers={"Origin": stack.base_url}, timeout=10)
    assert same_site.status_code == 200


@pytest.mark.parametrize("which_port", ["port", "ws_port", "funasr_ws_port"])
def test_websockets_from_another_site_or_for_another_host_are_refused(deployment: Deployment,
                                                                      which_port: str) -> None:
    port = getattr(deployment.stack.settings, which_port)
    path = "/v1/stream" if which_port == "port" else "/"
    assert handshake_status(port, f"127.0.0.1:{port}", f"http://{HOSTILE_NAME}", path) == 403
    assert handshake_status(port, f"127.0.0.1:{port}", "null", path) == 403
    assert handshake_status(port, f"{HOSTILE_NAME}:{port}", None, path) == 403
    # No Origin (the CLI, FunASR's clients) or this server's own page: the session opens.
    assert handshake_status(port, f"127.0.0.1:{port}", None, path) == 101
    assert handshake_status(port, f"127.0.0.1:{port}", deployment.stack.base_url, path) == 101


def test_a_client_without_origin_still_streams(deployment: Deployment) -> None:
    with open_ws(f"ws://127.0.0.1:{deployment.stack.settings.ws_port}/") as ws:
        ws.ping().wait(10)


# --- item 10: small leaks ------------------------------------------------------------------------


def test_the_websocket_ports_serve_only_websockets_and_health(deployment: Deployment) -> None:
    settings = deployment.stack.settings
    for port in (settings.ws_port, settings.funasr_ws_port):
        response = requests.get(f"http://127.0.0.1:{port}/v1/jobs", timeout=10)
        assert response.status_code == 404, response.text
        assert f"port {settings.port}" in response.json()["error"]
        upload = requests.post(f"http://127.0.0.1:{port}/v1/jobs", files={"audio": ("a.wav", b"RIFF" * 10)},
                               timeout=10)
        assert upload.status_code == 404
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code in (200, 503)


def test_public_readyz_holds_no_error_text_or_worker_names(deployment: Deployment) -> None:
    url = f"{deployment.keyed_url}/readyz"
    public = requests.get(url, timeout=30)
    assert public.status_code == 503
    body = public.json()
    assert body["checks"]["storage"] == "failed", body
    assert deployment.keyed.s3_endpoint_url not in public.text
    assert "file@" not in public.text, public.text
    assert body["queues"]["cpu"]["workers"] >= 1, body
    for key in ("not-a-key", deployment.user_key):
        assert requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=30).json() == body
    admin = requests.get(url, headers={"Authorization": f"Bearer {deployment.admin_key}"}, timeout=30).json()
    assert deployment.keyed.s3_endpoint_url in admin["checks"]["storage"], admin
    assert any(name.startswith("file@") for name in admin["queues"]["cpu"]["workers"]), admin


def test_flower_has_no_secret_on_its_command_line(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    password = "flower-pass-" + base64.b32encode(os.urandom(5)).decode()
    settings = Settings(data_dir=tmp_path, redis_url=redis_server.url, flower_port=free_port(),
                        flower_basic_auth=f"ops:{password}")
    log = (tmp_path / "flower.log").open("ab")
    process = subprocess.Popen(commands.flower_argv(settings), env={**os.environ, **settings.as_child_environment()},
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{settings.flower_port}/"
        deadline_s = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "flower.log").read_text()
            try:
                refused = requests.get(url, timeout=5)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline_s, (tmp_path / "flower.log").read_text()
                time.sleep(0.3)
        assert refused.status_code == 401  # the basic auth reached Flower
        assert requests.get(url, auth=("ops", password), timeout=10).status_code == 200
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert "flower" in command_line
        assert password not in command_line and redis_server.url not in command_line, command_line
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def test_a_body_sent_to_a_route_that_takes_none_is_not_drained(deployment: Deployment) -> None:
    """A route that reads no body (here /healthz) answers and the connection ends: the unread
    body is not read and thrown away for as long as the client sends. (This held before issue
    17: gunicorn 27 closes such a connection itself; the test keeps it so.)"""
    port = deployment.stack.settings.port
    sock = connect(port, timeout_s=20)
    chunk = f"{CHUNK_BYTES:x}\r\n".encode() + b"a" * CHUNK_BYTES + b"\r\n"
    sent_after_answer_bytes = 0
    try:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                     + chunk)
        answer = b""
        try:
            while not answer.endswith(b"}") and (piece := sock.recv(4096)):
                answer += piece
        except ConnectionResetError:
            pass  # closed right after the answer, which a reset may cut
        assert answer.startswith(b"HTTP/1.1 200") or not answer, answer
        try:
            while sent_after_answer_bytes < 512 * 1024 * 1024:  # the client keeps sending
                sock.sendall(chunk)
                sent_after_answer_bytes += CHUNK_BYTES
        except (BrokenPipeError, ConnectionResetError):
            pass
    finally:
        sock.close()
    assert sent_after_answer_bytes < SENT_PAST_LIMIT_BYTES, "the API kept reading a body no route asked for"
