"""The caller of a request: which key, whose jobs it sees, and its limits."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import Settings
from shared.db.models import ApiKey


@dataclass(frozen=True)
class Principal:
    """The caller. Limits of 0 mean none."""

    key_id: str | None
    name: str
    is_admin: bool
    requests_per_minute: int = 0
    max_jobs_in_flight: int = 0
    audio_seconds_per_day: int = 0
    #: Live sessions at once (the setting `max_live_sessions_per_key`; no per-key column yet).
    max_live_sessions: int = 0

    @property
    def owner_filter(self) -> str | None:
        """Whose jobs this caller may see: its own, or (admins, auth off) everyone's."""
        return None if self.is_admin else self.key_id


ANONYMOUS = Principal(key_id=None, name="anonymous", is_admin=True)


def principal_of(key: ApiKey, settings: Settings) -> Principal:
    def limit(own: int | None, default: int) -> int:
        return default if own is None else own

    return Principal(
        key_id=key.id, name=key.name, is_admin=key.is_admin,
        requests_per_minute=limit(key.requests_per_minute, settings.default_requests_per_minute),
        max_jobs_in_flight=limit(key.max_jobs_in_flight, settings.default_max_jobs_in_flight),
        audio_seconds_per_day=limit(key.audio_seconds_per_day, settings.default_audio_seconds_per_day),
        max_live_sessions=settings.max_live_sessions_per_key,
    )
