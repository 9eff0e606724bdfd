"""A live session's audio, charged to its key's daily allowance as it goes.

A file job is charged once, for its measured length; a live session has no length until it
ends, and one that never ends must not run past its key's day. So the audio relayed to the
worker is charged every `LIVE_CHARGE_INTERVAL_S` of it and once more at the end, and the
session is ended (its sentences kept) once the allowance is used up.
"""

from __future__ import annotations

from api.key_limits import KeyLimiter
from api.principal import Principal

#: A live session is charged against its key's daily audio as it goes, every this much audio.
LIVE_CHARGE_INTERVAL_S = 10.0


class LiveAudioMeter:
    """Counts one connection's relayed audio (16-bit PCM at the client's rate) and charges it."""

    def __init__(self, limiter: KeyLimiter, principal: Principal, sample_rate_hz: int) -> None:
        self._limiter = limiter
        self.principal = principal
        self._bytes_per_s = 2 * sample_rate_hz
        #: 16-bit PCM sent to the worker, at the client's sample rate: the session's audio.
        self.relayed_bytes = 0
        #: Of it, what the key has been charged for.
        self._charged_bytes = 0

    def resumed_at(self, relayed_bytes: int) -> None:
        """A resumed session: its earlier connections relayed this much, and paid for it."""
        self.relayed_bytes = self._charged_bytes = relayed_bytes

    @property
    def relayed_s(self) -> float:
        return self.relayed_bytes / self._bytes_per_s

    def relayed(self, size_bytes: int) -> bool:
        """Count audio sent to the worker; True when a charge is due (`charge`)."""
        self.relayed_bytes += size_bytes
        return self.relayed_bytes - self._charged_bytes >= LIVE_CHARGE_INTERVAL_S * self._bytes_per_s

    def charge(self) -> None:
        """Charge the key for the audio relayed since the last charge."""
        if self.relayed_bytes <= self._charged_bytes:
            return
        seconds = (self.relayed_bytes - self._charged_bytes) / self._bytes_per_s
        self._charged_bytes = self.relayed_bytes
        self._limiter.record_audio(self.principal, seconds)

    def spent_message(self, session_id: str) -> str | None:
        """Why the session must end now, when its key has no audio left today; else None."""
        if self._limiter.has_audio_left(self.principal):
            return None
        return (f"key {self.principal.key_id} has used its {self.principal.audio_seconds_per_day} audio seconds "
                f"for today; the session was ended and its sentences are saved in job {session_id}")
