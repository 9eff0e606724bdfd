"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
keyed by the bytes a `whsec_<base64>` secret encodes, one signature per configured secret
(space-separated), so receivers keep verifying while a secret is rotated."""

from __future__ import annotations

import base64
import hashlib
import hmac

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature_header(secrets: list[str], webhook_id: str, timestamp_s: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp_s}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(secret_key(secret), signed, hashlib.sha256).digest()).decode("ascii")
        for secret in secrets
    )


def webhook_headers(secrets: list[str], webhook_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt (the timestamp is the attempt's, the id the event's)."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signature_header(secrets, webhook_id, timestamp_s, body),
        "content-type": "application/json",
        "user-agent": "OddASR-Webhooks/1",
    }
