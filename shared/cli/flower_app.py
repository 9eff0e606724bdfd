"""The Celery app Flower loads (`celery -A shared.cli.flower_app flower`) under Redis Sentinel:
kombu's sentinel transport needs `master_name` in its transport options, which a broker URL
alone cannot carry. Light: the settings and the Celery factory, no worker code."""

from __future__ import annotations

from shared.celery_factory import make_celery
from shared.config import get_settings

app = make_celery(get_settings(), name="oddasr-flower")
