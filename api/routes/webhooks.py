"""A job's webhook deliveries: the log of every attempt, and sending the last event again."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api.auth import current_principal
from api.deps import deps
from api.response_models import webhooks as out
from shared.db.webhooks import REDACTED_PAYLOAD, WebhookRepository
from shared.errors import ConflictError, GoneError, NotFoundError
from shared.jobs.dispatch import send_pending_webhooks

blueprint = Blueprint("webhooks", __name__)


@blueprint.get("/v1/jobs/<job_id>/webhooks")
def list_deliveries(job_id: str):  # type: ignore[no-untyped-def]
    d = deps()
    job = d.jobs.get(job_id, current_principal().owner_filter)
    deliveries = WebhookRepository(d.jobs.session_factory).for_job(job_id)
    return jsonify(out.WebhookDeliveries(job_id=job.id, callback_url=job.callback_url,
                                         deliveries=[out.WebhookDelivery.of(d) for d in deliveries]).public())


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
    response = jsonify(out.WebhookDelivery.of(webhooks.get(last.id) or last).public())
    response.status_code = 202
    return response
