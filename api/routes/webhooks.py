"""A job's webhook deliveries: the log of every attempt, and sending the last event again."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api.auth import current_principal
from api.deps import deps
from shared.db.models import WebhookDelivery
from shared.db.utc import iso
from shared.db.webhooks import REDACTED_PAYLOAD, WebhookRepository
from shared.errors import ConflictError, GoneError, NotFoundError
from shared.jobs.dispatch import send_pending_webhooks

blueprint = Blueprint("webhooks", __name__)


def delivery_to_dict(delivery: WebhookDelivery) -> dict[str, object]:
    return {
        "id": delivery.id,
        "event_type": delivery.event_type,
        "url": delivery.url,
        "state": delivery.state,
        "attempts": delivery.attempts or [],
        "next_attempt_at": iso(delivery.next_attempt_at) if delivery.state == "pending" else None,
        "created_at": iso(delivery.created_at),
    }


@blueprint.get("/v1/jobs/<job_id>/webhooks")
def list_deliveries(job_id: str):  # type: ignore[no-untyped-def]
    d = deps()
    job = d.jobs.get(job_id, current_principal().owner_filter)
    deliveries = WebhookRepository(d.jobs.session_factory).for_job(job_id)
    return jsonify({"job_id": job.id, "callback_url": job.callback_url,
                    "deliveries": [delivery_to_dict(delivery) for delivery in deliveries]})


@blueprint.post("/v1/jobs/<job_id>/webhooks/redeliver")
def redeliver(job_id: str):  # type: ignore[no-untyped-def]
    """Send the job's last event again, with its original `webhook-id`, from the first attempt
    of the retry schedule (receivers that de-duplicate on the id see it once). A deleted or
    expired job's events are gone with its data: 410."""
    d = deps()
    job = d.jobs.get(job_id, current_principal().owner_filter)
    webhooks = WebhookRepository(d.jobs.session_factory)
    deliveries = webhooks.for_job(job_id)
    if job.data_expired_at is not None:
        raise GoneError(f"the data of job {job_id} expired with the retention ({d.settings.retention_days:g} days);"
                        " its webhook events are no longer kept and cannot be sent again")
    if any(delivery.payload == REDACTED_PAYLOAD for delivery in deliveries):
        raise GoneError(f"job {job_id} was deleted; its webhook events are no longer kept and cannot be sent again")
    if not deliveries:
        raise NotFoundError(f"job {job_id} has no webhook event (no callback_url, or not finished yet)")
    last = deliveries[-1]
    if not webhooks.redeliver(last.id):
        raise ConflictError(f"an attempt of webhook {last.id} is in flight; try again in a few seconds")
    send_pending_webhooks(d.celery, d.settings, d.jobs.session_factory, job_id)
    response = jsonify(delivery_to_dict(webhooks.get(last.id) or last))
    response.status_code = 202
    return response
