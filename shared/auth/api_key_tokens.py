"""The format of an API key and its stored hash.

A key reads ``oddasr_sk_<id>_<secret>``: the prefix says what it is (secret scanners and
people recognise it), the id is short and safe to log, and the secret holds 256 random bits.
Only HMAC-SHA256(secret) under a server-side key is stored. A password hash (slow by design)
would protect low-entropy passwords against guessing; a 256-bit random secret cannot be
guessed, so a fast keyed hash is right, and it keeps each request's check to microseconds.
The HMAC key means a copy of the database alone does not let anyone test candidate keys.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

KEY_PREFIX = "oddasr_sk_"
KEY_ID_HEX_CHARS = 8
SECRET_BYTES = 32
#: The generated HMAC key's file in data_dir when `api_key_hash_secret` is not configured.
HASH_SECRET_FILE_NAME = "api-key-hash.secret"


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        """What the client sends; shown once, never stored."""
        return f"{KEY_PREFIX}{self.key_id}_{self.secret}"


def generate_key() -> NewKey:
    return NewKey(key_id=secrets.token_hex(KEY_ID_HEX_CHARS // 2), secret=secrets.token_urlsafe(SECRET_BYTES))


def split_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None (never an exception: it is input)."""
    if not token.startswith(KEY_PREFIX):
        return None
    rest = token[len(KEY_PREFIX):]
    key_id, sep, secret = rest[:KEY_ID_HEX_CHARS], rest[KEY_ID_HEX_CHARS:KEY_ID_HEX_CHARS + 1], \
        rest[KEY_ID_HEX_CHARS + 1:]
    if sep != "_" or not secret or len(secret) > 128 or any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


def hash_secret(secret: str, hmac_key: bytes) -> str:
    return hmac.new(hmac_key, secret.encode(), hashlib.sha256).hexdigest()


def secrets_match(secret: str, stored_hash: str, hmac_key: bytes) -> bool:
    """Constant time, so the time of a refusal says nothing about how much of a guess was right."""
    return hmac.compare_digest(hash_secret(secret, hmac_key), stored_hash)


def resolve_hash_key(configured: str, data_dir: Path) -> bytes:
    """The configured HMAC key, or for a one-machine setup one generated once into data_dir
    (readable by its owner only). Deployments with several API machines must configure it:
    each machine would otherwise make its own and refuse the others' keys."""
    if configured:
        return configured.encode()
    path = Path(data_dir) / HASH_SECRET_FILE_NAME
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a temporary name, then linked into place: linking fails if another
    # process got there first, and nobody ever reads a half-written file.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_urlsafe(32).encode())
    try:
        os.link(temp, path)
    except FileExistsError:
        pass
    else:
        logger.info("made the API key hash secret %s (set api_key_hash_secret to share it between machines)", path)
    finally:
        temp.unlink()
    return path.read_bytes().strip()
