"""The API process's long-lived clients, built once in the app factory and shared by requests."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import current_app

from api.key_limits import KeyLimiter
from shared.config import Settings
from shared.db.api_keys import ApiKeyRepository
from shared.db.hotword_sets import HotwordSetRepository
from shared.db.repository import JobRepository
from shared.hotwords import HotwordEntry
from shared.storage import Storage


@dataclass
class ApiDeps:
    settings: Settings
    jobs: JobRepository
    storage: Storage
    redis: redis.Redis
    celery: Celery
    api_keys: ApiKeyRepository
    limiter: KeyLimiter
    hotword_sets: HotwordSetRepository
    #: The server's default set, from the original's hotword file (`hotwords_path`).
    default_hotwords: list[HotwordEntry]


EXTENSION_KEY = "oddasr"


def deps() -> ApiDeps:
    return current_app.extensions[EXTENSION_KEY]
