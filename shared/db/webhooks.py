"""The webhook outbox: deliveries recorded with the job's final status, then attempted.

`record_final_event` runs inside `JobRepository.transition`'s transaction, so the event
exists exactly when the final status does. An attempt first claims its delivery (a
conditional update that only one sender wins, holding it until `locked_until`), then writes
its outcome with the claim's token; a sender that died mid-send lets its claim expire and
the reconciler's sweep sends the same event again, with the same `webhook-id`.

A stored body carries the transcript, so it goes with the job's data: `redact_payloads` runs
in the transaction that forgets a job's stored keys (DELETE, retention) and leaves
`REDACTED_PAYLOAD` in its place, which no first attempt overwrites.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.db.clock import db_now
from shared.db.models import DeliveryState, Job, JobStatus, WebhookDelivery, utc_now

#: Event types, by the job's final status; a live session's job ends as `stream.ended`.
EVENT_TYPES: dict[JobStatus, str] = {
    JobStatus.SUCCEEDED: "job.succeeded",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELED: "job.canceled",
}
STREAM_ENDED = "stream.ended"
#: The body of a delivery whose job's data was deleted: empty, yet not NULL (NULL means "not
#: built yet", and `fix_payload` fills only that), so a body built before the deletion is
#: never stored after it.
REDACTED_PAYLOAD = ""


def new_webhook_id() -> str:
    """Standard Webhooks ids look like `msg_<random>`; unique per event, never per attempt."""
    return f"msg_{secrets.token_hex(16)}"


def record_final_event(session: Session, job_id: str, target: JobStatus, stream_mode: str) -> None:
    """Add the job's final event to the outbox when it has a callback URL, in the caller's
    transaction (the one that writes the final status)."""
    row = session.execute(select(Job.callback_url, Job.mode).where(Job.id == job_id)).one_or_none()
    if row is None or not row.callback_url:
        return
    event_type = STREAM_ENDED if row.mode == stream_mode else EVENT_TYPES[target]
    now = utc_now()
    session.add(WebhookDelivery(
        id=new_webhook_id(), job_id=job_id, event_type=event_type, url=row.callback_url,
        state=DeliveryState.PENDING, attempts=[], schedule_step=0, next_attempt_at=db_now(), created_at=now,
        updated_at=now,
    ))


def redact_payloads(session: Session, job_id: str) -> None:
    """Drop the stored bodies of the job's events (they carry its transcript), in the
    caller's transaction: the one that forgets the job's stored data."""
    session.execute(update(WebhookDelivery).where(WebhookDelivery.job_id == job_id)
                    .values(payload=REDACTED_PAYLOAD, updated_at=utc_now()))


@dataclass(frozen=True)
class Claim:
    """A delivery held by one sender for one attempt."""

    delivery: WebhookDelivery
    token: str


class WebhookRepository:
    """Reads and writes webhook deliveries; each method is its own short transaction."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def for_job(self, job_id: str) -> list[WebhookDelivery]:
        with self._session_factory() as session:
            query = select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(
                WebhookDelivery.created_at, WebhookDelivery.id)
            return list(session.scalars(query).all())

    def get(self, delivery_id: str) -> WebhookDelivery | None:
        with self._session_factory() as session:
            return session.get(WebhookDelivery, delivery_id)

    def due(self, due_before: datetime, limit: int = 100) -> list[str]:
        """Pending deliveries due before `due_before` (a time on the database's clock) that no
        sender holds."""
        now = db_now()
        with self._session_factory() as session:
            query = (select(WebhookDelivery.id)
                     .where(WebhookDelivery.state == DeliveryState.PENDING,
                            WebhookDelivery.next_attempt_at <= due_before,
                            or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now))
                     .order_by(WebhookDelivery.next_attempt_at).limit(limit))
            return list(session.scalars(query).all())

    def pending_for_job(self, job_id: str) -> list[str]:
        with self._session_factory() as session:
            query = select(WebhookDelivery.id).where(WebhookDelivery.job_id == job_id,
                                                     WebhookDelivery.state == DeliveryState.PENDING)
            return list(session.scalars(query).all())

    def claim(self, delivery_id: str, hold_s: float) -> Claim | None:
        """Take a due, pending, unheld delivery for one attempt; None when it is not due,
        already ended, or another sender holds it. Due and held are judged by the database's
        clock: the sender that claims and the one that scheduled may run on different hosts."""
        now = db_now()
        token = uuid.uuid4().hex
        with self._session_factory.begin() as session:
            result = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.state == DeliveryState.PENDING,
                       WebhookDelivery.next_attempt_at <= now,
                       or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now))
                .values(locked_until=db_now(hold_s), lock_token=token, updated_at=now)
            )
            if result.rowcount != 1:
                return None
            delivery = session.get(WebhookDelivery, delivery_id)
            assert delivery is not None
            session.expunge(delivery)
        return Claim(delivery=delivery, token=token)

    def fix_payload(self, delivery_id: str, payload: str) -> str:
        """Store the body on first use; returns the stored body (the first one wins, and a
        redacted one stays redacted)."""
        with self._session_factory.begin() as session:
            session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id,
                                                         WebhookDelivery.payload.is_(None)).values(payload=payload))
            stored = session.scalar(select(WebhookDelivery.payload).where(WebhookDelivery.id == delivery_id))
        return payload if stored is None else stored

    def finish_attempt(self, claim: Claim, attempt: dict[str, Any], state: DeliveryState,
                       retry_in_s: float | None) -> bool:
        """Record one attempt and what follows it (delivered, gone, failed, or the next try
        `retry_in_s` from now on the database's clock)."""
        now = db_now()
        with self._session_factory.begin() as session:
            delivery = session.get(WebhookDelivery, claim.delivery.id)
            if delivery is None or delivery.lock_token != claim.token:
                return False
            delivery.attempts = [*(delivery.attempts or []), attempt]
            delivery.schedule_step = (delivery.schedule_step or 0) + 1
            delivery.state = state
            delivery.next_attempt_at = db_now(retry_in_s) if retry_in_s is not None else now
            delivery.locked_until = None
            delivery.lock_token = None
            delivery.updated_at = now
        return True

    def redeliver(self, delivery_id: str) -> bool:
        """Send an event again from the start of the schedule, same id; False while an
        attempt is in flight."""
        now = db_now()
        with self._session_factory.begin() as session:
            result = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id,
                       or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now))
                .values(state=DeliveryState.PENDING, schedule_step=0, next_attempt_at=now, locked_until=None,
                        lock_token=None, updated_at=now)
            )
            return result.rowcount == 1
