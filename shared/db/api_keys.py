"""API key persistence: create (the key is returned once), list, revoke, verify."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.auth.api_key_tokens import generate_key, hash_secret, secrets_match, split_token
from shared.db.models import ApiKey, utc_now
from shared.errors import BadRequestError, NotFoundError

#: `last_used_at` is written at most this often per key: a write per request would cost more
#: than the answer it serves.
LAST_USED_RESOLUTION = timedelta(seconds=60)
MAX_NAME_CHARS = 128
#: The largest limit a key may have: the limit columns are 32-bit integers on PostgreSQL.
MAX_LIMIT_VALUE = 2**31 - 1


@dataclass(frozen=True)
class KeyLimits:
    """A key's own limits; None: the configured default applies."""

    requests_per_minute: int | None = None
    max_jobs_in_flight: int | None = None
    audio_seconds_per_day: int | None = None


class ApiKeyRepository:
    def __init__(self, session_factory: sessionmaker[Session], hmac_key: bytes) -> None:
        self._session_factory = session_factory
        self._hmac_key = hmac_key

    def create(self, name: str, *, is_admin: bool = False, limits: KeyLimits | None = None) -> tuple[ApiKey, str]:
        """The new key's row and the key itself: the only time it exists outside the client."""
        name = name.strip()
        if not name or len(name) > MAX_NAME_CHARS:
            raise BadRequestError(f"a key needs a name of 1 to {MAX_NAME_CHARS} characters")
        limits = limits or KeyLimits()
        for field_name, value in vars(limits).items():
            if value is not None and not 0 <= value <= MAX_LIMIT_VALUE:
                raise BadRequestError(f"{field_name} must be between 0 and {MAX_LIMIT_VALUE}")
        new = generate_key()
        row = ApiKey(id=new.key_id, name=name, secret_hash=hash_secret(new.secret, self._hmac_key),
                     is_admin=is_admin, requests_per_minute=limits.requests_per_minute,
                     max_jobs_in_flight=limits.max_jobs_in_flight,
                     audio_seconds_per_day=limits.audio_seconds_per_day, created_at=utc_now())
        with self._session_factory.begin() as session:
            session.add(row)
        return row, new.token

    def list(self) -> list[ApiKey]:
        with self._session_factory() as session:
            return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).all())

    def get(self, key_id: str) -> ApiKey:
        with self._session_factory() as session:
            row = session.get(ApiKey, key_id) if len(key_id) <= 16 else None
            if row is None:
                raise NotFoundError(f"API key {key_id[:16]} not found")
            return row

    def revoke(self, key_id: str) -> ApiKey:
        """Revoked keys are refused from the next request on; their jobs stay theirs."""
        self.get(key_id)
        with self._session_factory.begin() as session:
            session.execute(update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                            .values(revoked_at=utc_now()))
        return self.get(key_id)

    def verify(self, token: str) -> ApiKey | None:
        """The live key that `token` is, or None (malformed, unknown, wrong secret, revoked)."""
        parts = split_token(token)
        if parts is None:
            return None
        key_id, secret = parts
        with self._session_factory() as session:
            row = session.get(ApiKey, key_id)
        if row is None or row.revoked_at is not None or not secrets_match(secret, row.secret_hash, self._hmac_key):
            return None
        now = utc_now()
        last_used = row.last_used_at
        if last_used is None or now - last_used > LAST_USED_RESOLUTION:
            with self._session_factory.begin() as session:
                session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
        return row
