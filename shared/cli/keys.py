"""`oddasr keys create|list|revoke`: API keys, managed where the database is reachable.

`create` prints the key alone on standard output (scripts capture it with `$(...)`); what a
person reads goes to standard error. The key is shown this once and never stored.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime

from shared.auth.api_key_tokens import resolve_hash_key
from shared.config import Settings
from shared.db.api_keys import ApiKeyRepository, KeyLimits
from shared.db.migrate import upgrade_to_head
from shared.db.models import ApiKey
from shared.db.session import make_engine, make_session_factory
from shared.errors import OddAsrError


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_action", required=True)
    create = actions.add_parser("create", help="make a key; it is printed once, on standard output")
    create.add_argument("--name", required=True, help="who the key is for (shown in lists and logs)")
    create.add_argument("--admin", action="store_true", help="sees every job and manages keys")
    create.add_argument("--rate", type=int, dest="requests_per_minute", metavar="PER_MINUTE",
                        help="requests per minute (0: none; default: default_requests_per_minute)")
    create.add_argument("--max-in-flight", type=int, dest="max_jobs_in_flight",
                        help="jobs queued or running at once (0: none; default: default_max_jobs_in_flight)")
    create.add_argument("--audio-seconds-per-day", type=int, dest="audio_seconds_per_day",
                        help="seconds of audio a day (0: none; default: default_audio_seconds_per_day)")
    listing = actions.add_parser("list", help="every key, without secrets")
    listing.add_argument("--json", action="store_true")
    revoke = actions.add_parser("revoke", help="refuse a key from its next request on")
    revoke.add_argument("key_id")


def _repository(settings: Settings) -> ApiKeyRepository:
    # The first command on a new machine may be this one; its INFO lines are noise beside a key.
    for name in ("alembic", "shared.db.migrate"):
        logging.getLogger(name).setLevel(logging.WARNING)
    upgrade_to_head(settings.database_url)
    factory = make_session_factory(make_engine(settings.database_url))
    return ApiKeyRepository(factory, resolve_hash_key(settings.api_key_hash_secret, settings.data_dir))


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M")


def _row(key: ApiKey) -> dict[str, object]:
    return {"id": key.id, "name": key.name, "admin": key.is_admin,
            "requests_per_minute": key.requests_per_minute, "max_jobs_in_flight": key.max_jobs_in_flight,
            "audio_seconds_per_day": key.audio_seconds_per_day, "created_at": _when(key.created_at),
            "last_used_at": _when(key.last_used_at), "revoked_at": _when(key.revoked_at)}


def run_keys(args: argparse.Namespace, settings: Settings) -> int:
    repository = _repository(settings)
    try:
        if args.keys_action == "create":
            limits = KeyLimits(requests_per_minute=args.requests_per_minute,
                               max_jobs_in_flight=args.max_jobs_in_flight,
                               audio_seconds_per_day=args.audio_seconds_per_day)
            key, token = repository.create(args.name, is_admin=args.admin, limits=limits)
            sys.stderr.write(f"created {'admin ' if key.is_admin else ''}key {key.id} ({key.name}); "
                             "it is shown once, keep it now:\n")
            sys.stdout.write(token + "\n")
            return 0
        if args.keys_action == "list":
            rows = [_row(key) for key in repository.list()]
            if args.json:
                sys.stdout.write(json.dumps(rows, indent=2) + "\n")
                return 0
            sys.stdout.write(f"{'ID':<10}{'NAME':<24}{'ADMIN':<7}{'RATE/MIN':<10}{'IN FLIGHT':<11}"
                             f"{'AUDIO S/DAY':<13}{'LAST USED':<18}REVOKED\n")
            for row in rows:
                def shown(value: object) -> str:
                    return "default" if value is None else str(value)

                sys.stdout.write(
                    f"{row['id']:<10}{str(row['name'])[:23]:<24}{'yes' if row['admin'] else 'no':<7}"
                    f"{shown(row['requests_per_minute']):<10}{shown(row['max_jobs_in_flight']):<11}"
                    f"{shown(row['audio_seconds_per_day']):<13}{row['last_used_at']!s:<18}{row['revoked_at']}\n")
            return 0
        key = repository.revoke(args.key_id)
        sys.stderr.write(f"revoked key {key.id} ({key.name})\n")
        return 0
    except OddAsrError as exc:
        sys.stderr.write(f"oddasr keys: {exc.message}\n")
        return 1
