"""Webhooks (Standard Webhooks): signed, retried, never to private addresses."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from shared.config.lists import split_list


class WebhookSettings(BaseModel):
    """Signing secrets, where deliveries may go, their retries and limits."""

    #: Signing secrets, `whsec_<base64>`, comma-separated in the environment; every one signs
    #: each delivery (rotation: add the new one, let receivers switch, drop the old one).
    #: Empty: `callback_url` is refused, since an unsigned webhook cannot be trusted.
    webhook_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Networks webhooks may reach although they are private or loopback (e.g. 127.0.0.0/8 for
    #: a receiver on the same machine); empty: only public addresses.
    webhook_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Delays before each retry after a failed attempt (the first attempt goes at once); the
    #: default spans about 27 hours in 8 attempts. Each delay is stretched by a random jitter.
    webhook_retry_schedule_s: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0])
    #: Each delay is multiplied by a random factor in [1 - this, 1 + this].
    webhook_retry_jitter_fraction: float = 0.1
    #: One attempt's whole time: name lookup, connect, sending the event and reading the
    #: answer together. A receiver that has not answered in full by then (a slow or trickling
    #: one) is a failed attempt, retried on the schedule.
    webhook_attempt_deadline_s: float = 10.0
    #: Of a receiver's answer only the status counts: at most this much of its body is read.
    webhook_max_response_bytes: int = 4096
    #: Deliveries the webhooks worker node runs at once (threads: each mostly waits on a socket).
    webhook_worker_concurrency: int = 50
    #: A transcript larger than this (as JSON) is sent as a link instead of inline.
    webhook_max_inline_bytes: int = 256 * 1024
    #: Prefix of the transcript link in events (e.g. https://asr.example.com); empty: a path.
    webhook_link_base_url: str = ""
    webhook_max_url_chars: int = 2048
    #: Deliveries due this long ago that no task attempted are sent again by the reconciler.
    webhook_sweep_after_s: float = 30.0

    @field_validator("webhook_secrets", "webhook_allowed_networks", "webhook_retry_schedule_s", mode="before")
    @classmethod
    def _webhook_lists(cls, value: object) -> object:
        return split_list(value)

    @field_validator("webhook_secrets")
    @classmethod
    def _whsec_secrets(cls, value: list[str]) -> list[str]:
        for secret in value:
            body = secret.removeprefix("whsec_")
            try:
                if secret == body or not base64.b64decode(body, validate=True):
                    raise ValueError
            except (ValueError, binascii.Error):
                raise ValueError("each webhook secret must be 'whsec_' followed by base64 bytes") from None
        return value

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"webhook_allowed_networks: {network!r} is not a network (e.g. 127.0.0.0/8)") from None
        return value

    @field_validator("webhook_retry_schedule_s")
    @classmethod
    def _schedule(cls, value: list[float]) -> list[float]:
        if any(delay_s < 0 for delay_s in value):
            raise ValueError("webhook_retry_schedule_s: delays cannot be negative")
        return value

    @field_validator("webhook_attempt_deadline_s")
    @classmethod
    def _positive_deadline(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("webhook_attempt_deadline_s must be more than 0 (seconds one attempt may take)")
        return value

    @field_validator("webhook_max_response_bytes")
    @classmethod
    def _response_cap(cls, value: int) -> int:
        if value < 0:
            raise ValueError("webhook_max_response_bytes cannot be negative")
        return value

    @field_validator("webhook_worker_concurrency")
    @classmethod
    def _webhook_threads(cls, value: int) -> int:
        if value < 1:
            raise ValueError("webhook_worker_concurrency must be at least 1")
        return value
