"""API keys: whether they are required, how they are hashed, and the limits a new key gets."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class KeySettings(BaseModel):
    """API keys and per-key limits."""

    #: `off`: no keys, every caller sees every job (the one-machine default, bound to
    #: 127.0.0.1); `required`: every request but the health probes and the API document
    #: needs a key, and each key sees only its own jobs.
    auth_mode: Literal["off", "required"] = "off"
    #: Serving a non-loopback address with auth off is refused unless this says it is meant.
    allow_unauthenticated_public: bool = False
    #: The key of the keyed hash (HMAC-SHA256) stored for each API key. Every API process and
    #: the `oddasr keys` command must share it; empty: one is made in data_dir on first use.
    api_key_hash_secret: str = ""
    #: Limits of keys created without their own (0: no limit). Enforced in Redis, so they
    #: hold across API processes and machines.
    default_requests_per_minute: int = 0
    default_max_jobs_in_flight: int = 0
    default_audio_seconds_per_day: int = 0
    #: Enrolled speakers (voiceprints) one key may hold; past it POST /v1/speakers answers 409
    #: (delete one first). 0: no limit.
    max_speakers_per_key: int = Field(default=200, ge=0)
    #: Hotword sets one key may hold; past it a PUT of a new set name answers 409 (replacing an
    #: existing set is always allowed). 0: no limit.
    max_hotword_sets_per_key: int = Field(default=100, ge=0)
    #: The key the command-line clients (`oddasr transcribe`, `oddasr stream`) send.
    api_key: str = ""
