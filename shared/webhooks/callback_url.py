"""Checking a client's `callback_url` at submission, so a bad one is a 400, not a job whose
webhook silently never arrives. What can be known before any DNS lookup is checked here: the
scheme, credentials, length, and a host that is an address (in any spelling) or a name that
means this machine. Names are checked again, resolved, when the webhook is sent."""

from __future__ import annotations

from urllib.parse import urlsplit

from shared.webhooks.ssrf_guard import literal_address, parse_networks, refusal_reason

#: Names that mean this machine whatever DNS says.
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class CallbackUrlError(ValueError):
    """The URL is unusable; the message says why, for the client."""


def check_callback_url(url: str, *, allowed_networks: list[str], max_chars: int) -> str:
    """Return the URL if acceptable, else raise CallbackUrlError naming the reason."""
    url = url.strip()
    if len(url) > max_chars:
        raise CallbackUrlError(f"callback_url is longer than {max_chars} characters")
    if any(ord(c) < 33 or c == "\\" for c in url):
        raise CallbackUrlError("callback_url must not contain spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackUrlError(f"callback_url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackUrlError("callback_url must be an http:// or https:// URL")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise CallbackUrlError("callback_url must not carry credentials (user:password@); "
                               "verify the webhook signature instead")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise CallbackUrlError("callback_url has no host")
    if port == 0:
        raise CallbackUrlError("callback_url has port 0")
    allowed = parse_networks(allowed_networks)
    address = literal_address(host)
    if address is not None:
        reason = refusal_reason(address, allowed)
        if reason:
            raise CallbackUrlError(f"callback_url may not point at {reason}")
    elif (host in _LOCAL_NAMES or host.endswith(".localhost")) and not allowed:
        raise CallbackUrlError("callback_url may not point at this machine (localhost)")
    return url
