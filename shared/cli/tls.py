"""Which certificate the command-line clients trust when the API speaks TLS (`https_api`).

A self-signed certificate is its own CA: `oddasr transcribe` and `oddasr stream` talking to
this config's own https API trust `ssl_cert_path`, and `--ca-cert` names another CA. Both
clients' libraries read the standard variables (requests `REQUESTS_CA_BUNDLE`, OpenSSL's
`SSL_CERT_FILE` for the websocket), so the choice is made once, here, for the process.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from shared.config import Settings


def ca_for(settings: Settings, server: str, ca_cert: str | None) -> str:
    """The CA file to trust for `server`, or '' for the system's store."""
    if ca_cert:
        return ca_cert
    if settings.https_api and settings.ssl_cert_path and server.rstrip("/") == settings.api_base_url:
        return settings.ssl_cert_path
    return ""


def trust(ca_path: str) -> None:
    """Trust `ca_path` for every https and wss connection this process makes."""
    if ca_path:
        os.environ["REQUESTS_CA_BUNDLE"] = ca_path
        os.environ["SSL_CERT_FILE"] = ca_path


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
