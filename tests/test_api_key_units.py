"""Key format and hashing, the exposure guard, the limiter's Redis outage, and `oddasr keys`."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from api.key_limits import KeyLimiter
from api.principal import Principal
from shared.auth.api_key_tokens import (
    KEY_PREFIX,
    generate_key,
    hash_secret,
    resolve_hash_key,
    secrets_match,
    split_token,
)
from shared.auth.exposure import api_exposure_problem, flower_exposure_problem, is_loopback_host
from shared.config import Settings
from shared.db.api_keys import ApiKeyRepository
from shared.db.migrate import upgrade_to_head
from shared.db.session import make_engine, make_session_factory
from shared.errors import BadRequestError
from tests.support.servers import free_port


def test_a_key_reads_as_prefix_id_secret_and_splits_back() -> None:
    new = generate_key()
    assert new.token.startswith(KEY_PREFIX) and len(new.key_id) == 8
    assert split_token(new.token) == (new.key_id, new.secret)
    assert len(new.secret) >= 43  # 256 random bits


@pytest.mark.parametrize("token", ["", "sk-openai", "oddasr_sk_", "oddasr_sk_1234567_x", "oddasr_sk_ABCDEFGH_x",
                                   "oddasr_sk_12345678x", "oddasr_sk_12345678_", "oddasr_sk_12345678_" + "a" * 200])
def test_malformed_keys_split_to_none(token: str) -> None:
    assert split_token(token) is None


def test_the_hash_is_keyed() -> None:
    stored = hash_secret("secret", b"k1")
    assert secrets_match("secret", stored, b"k1")
    assert not secrets_match("secret", stored, b"k2") and not secrets_match("secreT", stored, b"k1")


def test_the_generated_hash_key_is_made_once_even_by_racing_processes(tmp_path: Path) -> None:
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(resolve_hash_key("", tmp_path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results[0]) >= 40
    assert oct(os.stat(tmp_path / "api-key-hash.secret").st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["api-key-hash.secret"]
    assert resolve_hash_key("configured", tmp_path) == b"configured"


def test_repository_verifies_only_live_matching_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    upgrade_to_head(url)
    keys = ApiKeyRepository(make_session_factory(make_engine(url)), b"h")
    row, token = keys.create("a")
    assert keys.verify(token).id == row.id  # type: ignore[union-attr]
    assert keys.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert ApiKeyRepository(make_session_factory(make_engine(url)), b"other").verify(token) is None
    keys.revoke(row.id)
    assert keys.verify(token) is None
    with pytest.raises(BadRequestError):
        keys.create(" ")


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True),
                                                ("localhost", True), ("0.0.0.0", False), ("::", False),
                                                ("10.0.0.5", False), ("api.example.com", False)])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_an_open_api_on_a_public_address_is_refused_unless_meant(tmp_path: Path) -> None:
    base = {"data_dir": tmp_path}
    assert api_exposure_problem(Settings(**base)) is None
    problem = api_exposure_problem(Settings(**base, host="0.0.0.0"))
    assert problem and "auth_mode=required" in problem and "allow_unauthenticated_public" in problem
    assert api_exposure_problem(Settings(**base, ws_host="0.0.0.0"))
    assert api_exposure_problem(Settings(**base, host="0.0.0.0", auth_mode="required")) is None
    assert api_exposure_problem(Settings(**base, host="0.0.0.0", allow_unauthenticated_public=True)) is None
    assert flower_exposure_problem(Settings(**base, host="0.0.0.0"))
    assert flower_exposure_problem(Settings(**base, host="0.0.0.0", flower_basic_auth="a:b")) is None


def test_a_limiter_whose_redis_is_down_lets_requests_through(caplog: pytest.LogCaptureFixture) -> None:
    """Rate limits never take the API down with them; submission reports the outage itself.

    Three requests against a limit of one a minute, and 15 audio seconds against 10 a day, all
    pass (no TooManyRequestsError), and each unchecked limit is logged, so the outage is seen."""
    import logging

    import redis

    url = f"redis://127.0.0.1:{free_port()}/0"
    limiter = KeyLimiter(url, redis.Redis.from_url(url), lambda _key: 0)
    principal = Principal(key_id="abcd1234", name="x", is_admin=False, requests_per_minute=1,
                          audio_seconds_per_day=10)
    with caplog.at_level(logging.WARNING, logger="api.key_limits"):
        for _ in range(3):
            assert limiter.check_request_rate(principal) is None
            assert limiter.check_audio_fits(principal, 5.0) is None
            assert limiter.charge_audio(principal, 5.0) is None
    unchecked = [r.getMessage() for r in caplog.records if "not checked, Redis unavailable" in r.getMessage()]
    assert len(unchecked) == 9, caplog.text
    assert sum("rate limit of key abcd1234" in m for m in unchecked) == 6  # requests and charges
    assert sum("audio allowance of key abcd1234" in m for m in unchecked) == 3


def _oddasr(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "ODDASR_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run([sys.executable, "-m", "shared.cli.main", *args], capture_output=True, text=True,
                          env=environment, timeout=60, check=False)


def test_keys_cli_prints_the_key_alone_on_stdout_and_revokes(tmp_path: Path) -> None:
    created = _oddasr(["keys", "create", "--name", "team-a", "--rate", "60", "--max-in-flight", "4"], tmp_path)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout == token + "\n" and split_token(token)
    key_id = token.split("_")[2]
    listed = _oddasr(["keys", "list"], tmp_path)
    assert key_id in listed.stdout and "team-a" in listed.stdout and token not in listed.stdout
    assert _oddasr(["keys", "revoke", key_id], tmp_path).returncode == 0
    assert "revoked" in _oddasr(["keys", "list", "--json"], tmp_path).stdout
    missing = _oddasr(["keys", "revoke", "ffffffff"], tmp_path)
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_cli_refuses_to_serve_an_open_api_publicly(tmp_path: Path) -> None:
    refused = _oddasr(["api"], tmp_path, ODDASR_HOST="0.0.0.0")
    assert refused.returncode == 2 and "auth_mode=off" in refused.stderr
    refused = _oddasr(["flower"], tmp_path, ODDASR_HOST="0.0.0.0", ODDASR_AUTH_MODE="required")
    assert refused.returncode == 2 and "Flower" in refused.stderr


def test_a_live_session_is_charged_when_it_ends_and_the_next_one_refused(redis_server) -> None:  # type: ignore[no-untyped-def]
    import redis

    from shared.errors import TooManyRequestsError

    limiter = KeyLimiter(redis_server.url, redis.Redis.from_url(redis_server.url), lambda _key: 0)
    principal = Principal(key_id=os.urandom(4).hex(), name="live", is_admin=False, audio_seconds_per_day=50)
    limiter.check_audio_left(principal)
    limiter.record_audio(principal, 20.0)
    limiter.check_audio_left(principal)
    limiter.record_audio(principal, 100.0)  # more than is left: the allowance fills up, no more
    with pytest.raises(TooManyRequestsError) as refused:
        limiter.check_audio_left(principal)
    assert "50 audio seconds" in refused.value.message and refused.value.retry_after_s
    with pytest.raises(TooManyRequestsError):
        limiter.charge_audio(principal, 1.0)
