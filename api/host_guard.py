"""Only requests meant for this server: the Host header, and a browser's Origin, must name an
allowed host (DNS rebinding and cross-site websockets, issue 17).

With `auth_mode=off` every caller is admin. A page on evil.example whose DNS name rebinds to
127.0.0.1 makes the browser send its requests here with `Host: evil.example`, and the
same-origin policy then lets the page read the answers; and any page may open a websocket to
127.0.0.1 (websockets have no same-origin policy, only the Origin header). This WSGI layer sits
in front of every route of every port, websocket handshakes included, and refuses both with
403 and a message that names the setting:

- `Host` is allowed when `allowed_hosts` holds `*`; when it is an IP address (a rebinding page
  needs a DNS name of its own, the reasoning of Vite's `server.allowedHosts`); `localhost` or a
  name under `.localhost`; this machine's name; the bound `host` / `ws_host`; or an entry of
  `allowed_hosts` (`.example.com`: that name and its subdomains). A request without one (HTTP/1.0,
  never a browser) passes.
- `Origin`, which browsers send and the CLI and FunASR's clients do not: its host must be the
  request's own Host (the page came from this server), a loopback address, or one of the names
  above. An IP address alone is not enough here: a page served from any address would pass.
  `null` (a page opened from a file, or a sandboxed frame of any site) passes only where
  `allowed_hosts` lists `null`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from api.upload_guard import force_close
from shared.config import Settings

logger = logging.getLogger(__name__)

ANY_HOST = "*"
#: The Origin of a page opened from a file or sandboxed; an allowed_hosts entry of its own.
NULL_ORIGIN = "null"
#: Bind addresses that mean "every interface": no name of their own.
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
#: Refused names are logged and echoed up to this length.
MAX_SHOWN_CHARS = 200


def host_name(header: str) -> str:
    """The name of a Host header value, lower-case, without port, brackets or trailing dot."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    name, separator, port = value.rpartition(":")
    if separator and port.isdigit() and ":" not in name:
        value = name
    return value.rstrip(".")


def _ip_address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


@dataclass(frozen=True)
class HostPolicy:
    """Which names this server answers to (see the module's docstring)."""

    any_host: bool
    names: frozenset[str]
    #: `.example.com` entries: the name itself and every name under it.
    suffixes: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> HostPolicy:
        entries = settings.allowed_hosts
        bound = {host_name(host) for host in (settings.host, settings.ws_host) if host not in WILDCARD_ADDRESSES}
        machine = socket.gethostname().lower()
        names = {"localhost", machine, machine.split(".", 1)[0], *bound,
                 *(entry for entry in entries if not entry.startswith("."))}
        return cls(any_host=ANY_HOST in entries, names=frozenset(names),
                   suffixes=(".localhost", *(entry for entry in entries if entry.startswith("."))))

    def is_own_name(self, name: str) -> bool:
        return name in self.names or any(name.endswith(suffix) or name == suffix[1:] for suffix in self.suffixes)

    def allows_host(self, name: str) -> bool:
        return self.any_host or not name or _ip_address(name) is not None or self.is_own_name(name)

    def allows_origin(self, origin: str, host: str) -> bool:
        if self.any_host:
            return True
        if origin.strip().lower() == NULL_ORIGIN:
            return NULL_ORIGIN in self.names
        name = (urlsplit(origin.strip()).hostname or "").rstrip(".")
        if not name:
            return False
        address = _ip_address(name)
        return name == host or (address is not None and address.is_loopback) or self.is_own_name(name)


def _refusal(start_response: Any, message: str) -> list[bytes]:
    force_close(start_response)  # never read (or drain) the body of a refused request
    body = json.dumps({"error": message}).encode()
    start_response("403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class HostGuard:
    """WSGI layer: refuse requests for other hosts, and browsers' requests from other sites."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.policy = HostPolicy.from_settings(settings)
        if not self.policy.any_host:
            logger.info("answering to IP addresses and the host names %s (allowed_hosts adds more)",
                        ", ".join(sorted(self.policy.names | {f"*{suffix}" for suffix in self.policy.suffixes})))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        host_header = environ.get("HTTP_HOST", "")
        host = host_name(host_header)
        if not self.policy.allows_host(host):
            shown = host_header[:MAX_SHOWN_CHARS]
            logger.info("refused a request for host %r (allowed_hosts)", shown)
            return _refusal(start_response, (
                f"this server does not answer to the host {shown!r} (the Host header): if that is one of its"
                " names, add it to allowed_hosts (ODDASR_ALLOWED_HOSTS, comma-separated), or set it to * to turn"
                " the check off"))
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and not self.policy.allows_origin(origin, host):
            shown = origin[:MAX_SHOWN_CHARS]
            logger.info("refused a browser request from origin %r (allowed_hosts)", shown)
            return _refusal(start_response, (
                f"a page from {shown!r} may not use this server (the Origin header): if that site is yours, add"
                " its host to allowed_hosts (ODDASR_ALLOWED_HOSTS, comma-separated)"))
        return self.app(environ, start_response)
