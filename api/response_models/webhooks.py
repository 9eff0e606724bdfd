"""A job's webhook deliveries as `/v1/jobs/{id}/webhooks` shows them."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.db.models import DeliveryState
from shared.db.models import WebhookDelivery as DeliveryRow
from shared.db.utc import iso
from shared.jobs.public_models import IsoTime, PublicModel


class WebhookDelivery(PublicModel):
    id: str = Field(description="The `webhook-id` header of every attempt.")
    event_type: str
    url: str
    state: DeliveryState
    attempts: list[dict[str, Any]]
    next_attempt_at: IsoTime | None = Field(description="While pending: when the next attempt goes.")
    created_at: IsoTime | None

    @classmethod
    def of(cls, delivery: DeliveryRow) -> WebhookDelivery:
        return cls(id=delivery.id, event_type=delivery.event_type, url=delivery.url, state=delivery.state,
                   attempts=delivery.attempts or [],
                   next_attempt_at=iso(delivery.next_attempt_at) if delivery.state == "pending" else None,
                   created_at=iso(delivery.created_at))


class WebhookDeliveries(PublicModel):
    job_id: str
    callback_url: str | None
    deliveries: list[WebhookDelivery]
