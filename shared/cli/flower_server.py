"""Start Flower with its secrets in its environment, never on its command line.

Any local user reads a process's command line (`ps`, /proc/PID/cmdline); only its owner reads
its environment (/proc/PID/environ). So this small entry point, started as
`python -m shared.cli.flower_server --address=... --port=...`, reads the settings (the launcher
and `oddasr flower` pass them as ODDASR_* variables), puts the broker URL (it may hold Redis'
password) into CELERY_BROKER_URL and the dashboard's `user:password` into FLOWER_BASIC_AUTH,
and replaces itself with `celery flower`, whose command line holds only the address and port.
"""

from __future__ import annotations

import os
import sys

from shared.config import get_settings
from shared.redis_connect import celery_broker_url


def flower_environment(broker_url: str, basic_auth: str) -> dict[str, str]:
    """The variables Celery and Flower read these two secrets from (Flower: FLOWER_<OPTION>)."""
    env = {"CELERY_BROKER_URL": broker_url}
    if basic_auth:
        env["FLOWER_BASIC_AUTH"] = basic_auth
    return env


def main() -> None:
    settings = get_settings()
    os.environ.update(flower_environment(celery_broker_url(settings), settings.flower_basic_auth))
    # Under Sentinel the broker needs transport options (the master's name): load the app that has them.
    app = ["-A", "shared.cli.flower_app"] if settings.redis_sentinels else []
    argv = [sys.executable, "-m", "celery", *app, "flower", *sys.argv[1:]]
    sys.stdout.flush()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
