"""`oddasr health`: is this config's API ready? For container health checks, whatever the scheme.

Compose's check used to fetch `http://127.0.0.1:9002/readyz`, which an API serving TLS
(`https_api`) refuses; this asks the API where the settings say it is. On loopback the
certificate is not checked (a health probe learns nothing from it, and a certificate made for
the public name does not name 127.0.0.1); elsewhere it is, against `--ca-cert` or the system.
"""

from __future__ import annotations

import sys
import warnings

import requests
import urllib3

from shared.cli.tls import is_loopback_url

HEALTH_TIMEOUT_S = 4.0


def check_ready(server: str, ca_cert: str = "", *, live_only: bool = False) -> int:
    """0 when `/readyz` answers ready (`live_only`: `/healthz` answers), 1 otherwise; one line
    on standard error either way."""
    url = f"{server.rstrip('/')}/{'healthz' if live_only else 'readyz'}"
    verify: str | bool = ca_cert or not is_loopback_url(url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            answer = requests.get(url, timeout=HEALTH_TIMEOUT_S, verify=verify)
        ready = answer.status_code == 200 and (live_only or bool(answer.json().get("ready")))
    except (requests.RequestException, ValueError) as exc:
        sys.stderr.write(f"oddasr health: {url} did not answer: {exc}\n")
        return 1
    sys.stderr.write(f"oddasr health: {url}: {'ready' if ready else f'not ready ({answer.status_code})'}\n")
    return 0 if ready else 1
