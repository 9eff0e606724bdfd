"""The webhook SSRF guard, the callback URL check and signing, on a corpus of hostile URLs.

No test here may send a packet outside 127.0.0.0/8: `loopback_only` wraps the socket layer so
that any attempt to connect elsewhere fails the test instead of going out, and `resolver`
answers every lookup from a table (numeric hosts are parsed, never looked up), so a broken
guard shows up as a failed test, never as traffic.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from standardwebhooks import Webhook

from shared.config import Settings
from shared.db.migrate import upgrade_to_head
from shared.db.models import DeliveryState, JobStatus, utc_now
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.db.webhooks import WebhookRepository
from shared.storage.local import LocalStorage
from shared.webhooks.callback_url import CallbackUrlError, check_callback_url
from shared.webhooks.signing import webhook_headers
from shared.webhooks.ssrf_guard import AddressRefused
from tests.support.job_rows import job_row
from tests.support.webhook_receiver import running_receiver
from worker.services.webhook_http import guarded_session
from worker.services.webhooks import WebhookContext, _post, attempt_delivery

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")

#: Names the test's resolver knows, and the addresses it gives them.
RESOLVER_TABLE: dict[str, list[str]] = {
    "evil.test": ["127.0.0.1"],
    "internal.test": ["10.0.0.7"],
    "metadata.test": ["169.254.169.254"],
    "mapped.test": ["::ffff:192.168.0.1"],
    "six.test": ["::1"],
    "cgnat.test": ["100.100.1.1"],
    "localhost": ["127.0.0.1"],
    "example.com": ["127.0.0.1"],
}

#: Hostile URLs; each must be refused, at submission or when connecting.
HOSTILE_URLS = [
    "http://127.0.0.1/", "http://127.1/", "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.0.0.1/",
    "http://0x7f000001/", "http://017700000001/", "http://0/", "http://0.0.0.0:9002/", "http://[::]/",
    "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:169.254.169.254]/", "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/", "http://10.0.0.1/", "http://172.16.5.4/", "https://192.168.1.1/",
    "http://100.64.0.1/", "http://[fc00::1]/", "http://[fe80::1]/", "http://224.0.0.1/",
    "http://255.255.255.255/", "http://198.18.0.1/", "http://[::127.0.0.1]/", "http://[2002:7f00:1::]/",
    "http://[64:ff9b::a9fe:a9fe]/", "http://127.0.0.1:6379/", "http://localhost/", "http://localhost./",
    "http://foo.localhost/", "http://user:pass@example.com/", "http://example.com@127.0.0.1/",
    "ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "javascript:alert(1)",
    "http://evil.test/", "http://internal.test/", "http://metadata.test/", "http://mapped.test/",
    "http://six.test/", "http://cgnat.test/", "http://hooks.example.com/" + "a" * 3000,
]

#: Refused only after resolution: the URL itself looks like any public one.
RESOLVED_HOSTILE = ["http://evil.test/", "http://internal.test/", "http://metadata.test/", "http://mapped.test/",
                    "http://six.test/", "http://cgnat.test/"]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Any connect to an address outside 127.0.0.0/8 raises (and fails the test)."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0]).split("%")[0]  # type: ignore[index]
            ip = ipaddress.ip_address(host)
            if ip.version != 4 or ip not in LOOPBACK:
                attempts.append(address)
                raise AssertionError(f"the test tried to connect outside 127.0.0.0/8: {address}")
        real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: pytest.fail(f"connect_ex {address}"))
    yield attempts
    assert not attempts, f"connections outside loopback were attempted: {attempts}"


@pytest.fixture(autouse=True)
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Lookups answered from RESOLVER_TABLE; numeric hosts parsed; nothing asks real DNS."""
    real = socket.getaddrinfo
    calls: dict[str, int] = {}

    def getaddrinfo(host: str, port: object, family: int = 0, type: int = 0, proto: int = 0,  # noqa: A002
                    flags: int = 0) -> list[tuple]:  # type: ignore[type-arg]
        calls[host] = calls.get(host, 0) + 1
        answers = RESOLVER_TABLE.get(str(host).rstrip(".").lower())
        if answers is None:
            return real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        result = []
        for address in answers:
            result.extend(real(address, port, family, type, proto, flags | socket.AI_NUMERICHOST))
        return result

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


def submission_refuses(url: str, allowed: list[str] | None = None) -> bool:
    try:
        check_callback_url(url, allowed_networks=allowed or [], max_chars=2048)
    except CallbackUrlError:
        return True
    return False


def connection_refuses(url: str) -> bool:
    session = guarded_session([])
    try:
        session.post(url, data=b"{}", timeout=2, allow_redirects=False)
    except AddressRefused:
        return True
    except Exception as exc:  # noqa: BLE001 (any other outcome means the guard let it through)
        pytest.fail(f"{url}: the guard did not refuse, the request failed otherwise: {exc!r}")
    finally:
        session.close()
    return False


def test_hostile_corpus_is_refused_in_full() -> None:
    assert len(HOSTILE_URLS) >= 30
    refused = [url for url in HOSTILE_URLS if submission_refuses(url) or connection_refuses(url)]
    assert refused == HOSTILE_URLS, sorted(set(HOSTILE_URLS) - set(refused))


@pytest.mark.parametrize("url", [u for u in HOSTILE_URLS if u not in RESOLVED_HOSTILE])
def test_submission_refuses_what_the_url_alone_shows(url: str) -> None:
    assert submission_refuses(url), url


@pytest.mark.parametrize("url", [u for u in HOSTILE_URLS if u.startswith("http") and "@" not in u and len(u) < 200
                                 and not u.startswith("http://foo.localhost")])
def test_connection_guard_refuses_every_address_form(url: str) -> None:
    """The second wall: even a URL that got past the submission check is never connected to."""
    assert connection_refuses(url), url


def test_names_resolving_to_private_addresses_pass_submission_but_not_the_connection() -> None:
    for url in RESOLVED_HOSTILE:
        assert not submission_refuses(url)
        assert connection_refuses(url)


def test_public_looking_urls_and_allowed_networks_are_accepted() -> None:
    assert check_callback_url(" https://hooks.example.com/oddasr?x=1 ", allowed_networks=[], max_chars=2048) == \
        "https://hooks.example.com/oddasr?x=1"
    assert not submission_refuses("http://127.0.0.1:8000/hook", allowed=["127.0.0.0/8"])
    assert not submission_refuses("http://localhost:8000/hook", allowed=["127.0.0.0/8"])
    assert submission_refuses("http://10.0.0.1/hook", allowed=["127.0.0.0/8"])


def test_allowed_network_connects_to_the_checked_address_once(resolver: dict[str, int]) -> None:
    """Check and connect use one resolution: a name cannot rebind between them."""
    with running_receiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        RESOLVER_TABLE["rebind.test"] = ["127.0.0.1"]
        try:
            session = guarded_session(["127.0.0.0/8"])
            response = session.post(f"http://rebind.test:{port}/hook", data=b"{}", timeout=5)
        finally:
            del RESOLVER_TABLE["rebind.test"]
        assert response.status_code == 200
        assert resolver["rebind.test"] == 1
        assert len(receiver.received("/hook")) == 1


def test_redirects_to_private_addresses_are_not_followed() -> None:
    with running_receiver() as receiver:
        receiver.script["/hook"] = [302]
        receiver.redirects["/hook"] = "http://169.254.169.254/latest/meta-data/"
        settings = Settings(webhook_allowed_networks=["127.0.0.0/8"], webhook_attempt_deadline_s=5)
        status_code, error, refused = _post(settings, f"{receiver.url}/hook", {}, b"{}")
    assert (status_code, error, refused) == (302, None, False)
    assert len(receiver.requests) == 1


def test_signatures_verify_with_standardwebhooks_for_every_secret() -> None:
    secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24="]
    body = b'{"type":"job.succeeded","data":{"job_id":"x"}}'
    headers = webhook_headers(secrets, "msg_abc", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in secrets:
        assert Webhook(secret).verify(body, headers)["type"] == "job.succeeded"
    with pytest.raises(Exception, match="No matching signature"):
        Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQQ==").verify(body, headers)


def test_settings_read_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="whsec_"):
        Settings(webhook_secrets=["not-a-secret"])
    with pytest.raises(ValueError, match="network"):
        Settings(webhook_allowed_networks=["nope"])
    monkeypatch.setenv("ODDASR_WEBHOOK_SECRETS", "whsec_YWJj, whsec_ZGVm")
    monkeypatch.setenv("ODDASR_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
    monkeypatch.setenv("ODDASR_WEBHOOK_RETRY_SCHEDULE_S", "0.5,1,2")
    settings = Settings()
    assert settings.webhook_secrets == ["whsec_YWJj", "whsec_ZGVm"]
    assert settings.webhook_allowed_networks == ["127.0.0.0/8", "::1/128"]
    assert settings.webhook_retry_schedule_s == [0.5, 1.0, 2.0]
    env = settings.as_child_environment()
    assert env["ODDASR_WEBHOOK_SECRETS"] == "whsec_YWJj,whsec_ZGVm"


def test_https_connects_to_the_checked_address_and_verifies_the_name(tmp_path: Path) -> None:
    """TLS still checks the certificate against the URL's host name (sent as SNI) although
    the socket connects to the address the guard checked."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=hooks.test", "-addext", "subjectAltName=DNS:hooks.test"],
                   check=True, capture_output=True)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server name)
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    RESOLVER_TABLE.update({"hooks.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    try:
        session = guarded_session(["127.0.0.0/8"])
        response = session.post(f"https://hooks.test:{port}/hook", data=b"{}", timeout=5, verify=str(cert))
        assert response.status_code == 204
        with pytest.raises(requests.exceptions.SSLError):
            session.post(f"https://other.test:{port}/hook", data=b"{}", timeout=5, verify=str(cert))
        with pytest.raises(AddressRefused):
            guarded_session([]).post(f"https://hooks.test:{port}/hook", data=b"{}", timeout=5, verify=str(cert))
    finally:
        del RESOLVER_TABLE["hooks.test"], RESOLVER_TABLE["other.test"]
        server.shutdown()
        server.server_close()


def test_a_name_resolving_to_a_private_address_ends_as_a_recorded_failed_delivery(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    jobs = JobRepository(make_session_factory(engine))
    webhooks = WebhookRepository(jobs.session_factory)
    jobs.create(job_row("j1", callback_url="http://internal.test/hook"))
    jobs.transition("j1", JobStatus.FAILED, error="bad audio", finished_at=utc_now())
    [delivery] = webhooks.for_job("j1")
    settings = Settings(data_dir=tmp_path, webhook_secrets=["whsec_YWJj"])
    ctx = WebhookContext(settings=settings, jobs=jobs, webhooks=webhooks, storage=LocalStorage(tmp_path / "s"))
    outcome = attempt_delivery(ctx, delivery.id)
    assert outcome is not None and outcome.state == DeliveryState.FAILED and outcome.retry_in_s is None
    [failed] = webhooks.for_job("j1")
    assert failed.state == DeliveryState.FAILED
    assert failed.attempts[0]["status_code"] is None
    assert failed.attempts[0]["error"].startswith("refused: ") and "10.0.0.7" in failed.attempts[0]["error"]
    assert jobs.get("j1").status == JobStatus.FAILED and jobs.get("j1").error == "bad audio"  # the job is untouched
    engine.dispose()
