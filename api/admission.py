"""Backlog admission for the API's own submissions (the rule itself: `shared.admission`)."""

from __future__ import annotations

from api.deps import ApiDeps
from shared.admission import check_backlog


def check_admission(deps: ApiDeps, queue: str) -> None:
    """Raise 503 with Retry-After when `queue`'s backlog has reached either of its limits."""
    check_backlog(deps.settings, deps.jobs.session_factory, deps.redis, queue)
