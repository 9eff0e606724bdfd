"""Refuse to serve an open API, or Flower, to a network by accident.

`auth_mode=off` is right for one machine on 127.0.0.1; bound to any other address it gives
every job to whoever reaches the port. Flower shows every task's arguments and can stop
workers, so it never listens beyond loopback without its basic auth.
"""

from __future__ import annotations

import ipaddress

from shared.config import Settings


def is_loopback_host(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


def api_exposure_problem(settings: Settings) -> str | None:
    """Why the API must not start with these settings, or None."""
    if settings.auth_mode != "off" or settings.allow_unauthenticated_public:
        return None
    public = sorted({host for host in (settings.host, settings.ws_host) if not is_loopback_host(host)})
    if not public:
        return None
    return (f"refusing to serve {', '.join(public)} with auth_mode=off: anyone who reaches the port could read and"
            " delete every job. Set auth_mode=required (ODDASR_AUTH_MODE) and create keys with `oddasr keys"
            " create`, or bind 127.0.0.1, or set allow_unauthenticated_public=true if an authenticating proxy"
            " stands in front")


def flower_exposure_problem(settings: Settings) -> str | None:
    if settings.flower_basic_auth or is_loopback_host(settings.host):
        return None
    return (f"refusing to start Flower on {settings.host} without authentication: set flower_basic_auth"
            " (user:password, ODDASR_FLOWER_BASIC_AUTH) or enable_flower=false")
