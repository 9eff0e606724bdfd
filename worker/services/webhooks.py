"""Sends one webhook attempt of an outbox delivery and decides what follows it.

A 2xx ends the delivery; 410 Gone stops it (recorded as `gone`); a refused address stops it
(the guard will refuse it again); anything else (another status, a timeout, a refused
connection) is retried after the next delay of `webhook_retry_schedule_s`, stretched by a
random jitter so that receivers coming back from an outage are not hit by every sender at
once. Redirects are never followed: a redirect is just a failed attempt. The body is fixed at
the first attempt and the `webhook-id` is the delivery's, so every attempt and every
redelivery of one event carries the same id and bytes. Nothing here changes the job.

Each attempt has one deadline (`webhook_attempt_deadline_s`) for the lookup, the connect,
the send and the whole answer, and reads at most `webhook_max_response_bytes` of the answer's
body: a receiver that promises a gigabyte and trickles it holds one thread of the webhooks
node for that long, no more. Once the job's data is deleted (DELETE, retention) its stored
bodies are redacted (`REDACTED_PAYLOAD`); an attempt after that sends the event without the
transcript, built afresh and never stored.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from shared.config import Settings
from shared.db.models import DeliveryState, Job, JobStatus, WebhookDelivery, utc_now
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.db.utc import iso
from shared.db.webhooks import REDACTED_PAYLOAD, STREAM_ENDED, WebhookRepository
from shared.jobs.public import job_event_data, segment_to_dict, transcript_to_dict
from shared.storage import Storage, StorageKeyNotFound, make_storage
from shared.transcript import Transcript
from shared.webhooks.signing import webhook_headers
from shared.webhooks.ssrf_guard import AddressRefused
from worker.services.attempt_deadline import AttemptDeadline
from worker.services.metrics import record_webhook_attempt
from worker.services.webhook_http import guarded_session

logger = logging.getLogger(__name__)

#: An attempt holds its delivery for its deadline and this margin (for recording the outcome);
#: past that its sender is taken as dead and another one sends the same event again.
CLAIM_MARGIN_S = 5.0
#: Errors are stored shortened: the delivery log is for people.
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class WebhookContext:
    settings: Settings
    jobs: JobRepository
    webhooks: WebhookRepository
    storage: Storage


class _ProcessContext:
    """This process's webhook clients, made on first use and shared by its threads."""

    lock = threading.Lock()
    context: WebhookContext | None = None


def process_webhook_context(settings: Settings) -> WebhookContext:
    """The clients the deliveries of this process use: a database engine and storage, never
    an engine (a webhooks node loads no model; a model worker's child makes its own)."""
    with _ProcessContext.lock:
        if _ProcessContext.context is None:
            jobs = JobRepository(make_session_factory(make_engine(settings.database_url)))
            _ProcessContext.context = WebhookContext(settings=settings, jobs=jobs,
                                                     webhooks=WebhookRepository(jobs.session_factory),
                                                     storage=make_storage(settings))
        return _ProcessContext.context


@dataclass(frozen=True)
class AttemptOutcome:
    state: DeliveryState
    #: Seconds until the next attempt, when one follows.
    retry_in_s: float | None


def build_payload(ctx: WebhookContext, delivery: WebhookDelivery, data_deleted: bool = False) -> str:
    """The event body: type, time and the job's outcome; the transcript inline up to
    `webhook_max_inline_bytes`, else as a link. `data_deleted`: the job's data is gone, so
    the body says so and carries no transcript."""
    job: Job = ctx.jobs.get(delivery.job_id)
    data = job_event_data(job, ctx.settings.webhook_link_base_url)
    transcript: dict[str, Any] | None = None
    if data_deleted:
        data["transcript"] = None
        data["data_deleted"] = True
    elif delivery.event_type == STREAM_ENDED:
        segments = ctx.jobs.stream_transcript_segments(job.id)
        transcript = {"text": " ".join(s.text for s in segments).strip(), "language": None,
                      "segments": [segment_to_dict(segment) for segment in segments]}
    elif job.status == JobStatus.SUCCEEDED and job.transcript_key:
        try:
            stored = Transcript.model_validate_json(ctx.storage.get_bytes(job.transcript_key))
            transcript = transcript_to_dict(stored)
        except StorageKeyNotFound:  # deleted since (retention): the event still goes, without it
            data["transcript"] = None
    if transcript is not None:
        inline = json.dumps(transcript, ensure_ascii=False)
        if len(inline.encode("utf-8")) <= ctx.settings.webhook_max_inline_bytes:
            data["transcript"] = transcript
        else:
            data["transcript"] = None
            data["transcript_too_large"] = True
    event = {"type": delivery.event_type, "timestamp": iso(delivery.created_at), "data": data}
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def next_delay_s(settings: Settings, step: int) -> float | None:
    """Delay before the attempt after `step` failed ones, with jitter; None: no more attempts."""
    schedule = settings.webhook_retry_schedule_s
    if step >= len(schedule):
        return None
    jitter = settings.webhook_retry_jitter_fraction
    return max(0.0, schedule[step] * random.uniform(1 - jitter, 1 + jitter))  # jitter, not a secret


def _read_at_most(raw: urllib3.BaseHTTPResponse, max_bytes: int) -> None:
    """Read the answer's body up to `max_bytes`, or to its end; an answer that ends before
    the length it announced raises (urllib3 checks it on the read that finds the end)."""
    left = max_bytes
    while left > 0:
        chunk = raw.read(left, decode_content=False)
        if not chunk:
            return
        left -= len(chunk)


def _deadline_error(deadline_s: float) -> str:
    return f"deadline: no complete answer within {deadline_s:g} s"


def _post(settings: Settings, url: str, headers: dict[str, str], body: bytes) -> tuple[int | None, str | None, bool]:
    """(status code, error, refused by the guard) of one POST, all of it within the attempt's
    deadline: the status counts only once the answer (up to the read cap) is in."""
    deadline_s = settings.webhook_attempt_deadline_s
    with AttemptDeadline(deadline_s) as deadline:
        session = guarded_session(settings.webhook_allowed_networks, deadline)
        try:
            response = session.post(url, data=body, headers=headers, allow_redirects=False, stream=True,
                                    timeout=(deadline.remaining_s(), deadline.remaining_s()))
            try:
                _read_at_most(response.raw, settings.webhook_max_response_bytes)
            finally:
                response.close()
            if deadline.expired:  # the cut socket reads as an early end, not always as an error
                return None, _deadline_error(deadline_s), False
            return response.status_code, None, False
        except AddressRefused as exc:
            return None, f"refused: {exc}"[:MAX_ERROR_CHARS], True
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if deadline.expired:
                return None, _deadline_error(deadline_s), False
            return None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS], False
        finally:
            session.close()


def attempt_delivery(ctx: WebhookContext, delivery_id: str) -> AttemptOutcome | None:
    """Make one attempt if the delivery is due and no one else holds it; None otherwise."""
    settings = ctx.settings
    claim = ctx.webhooks.claim(delivery_id, hold_s=settings.webhook_attempt_deadline_s + CLAIM_MARGIN_S)
    if claim is None:
        return None
    delivery = claim.delivery
    payload = delivery.payload
    if payload is None:
        payload = ctx.webhooks.fix_payload(delivery.id, build_payload(ctx, delivery))
    if payload == REDACTED_PAYLOAD:  # deleted since (or while this body was built): never stored again
        payload = build_payload(ctx, delivery, data_deleted=True)
    body = payload.encode("utf-8")
    headers = webhook_headers(settings.webhook_secrets, delivery.id, int(time.time()), body)
    started_at = utc_now()
    started_s = time.monotonic()
    status_code, error, refused = _post(settings, delivery.url, headers, body)
    duration_ms = round((time.monotonic() - started_s) * 1000, 1)
    retry_in_s: float | None = None
    if status_code is not None and 200 <= status_code < 300:
        state = DeliveryState.DELIVERED
    elif status_code == 410:
        state = DeliveryState.GONE
    elif refused:
        state = DeliveryState.FAILED
    else:
        retry_in_s = next_delay_s(settings, delivery.schedule_step)
        state = DeliveryState.PENDING if retry_in_s is not None else DeliveryState.FAILED
        if status_code is not None and 300 <= status_code < 400:
            error = "redirect not followed"
    attempt = {"at": iso(started_at), "status_code": status_code, "error": error, "duration_ms": duration_ms}
    ctx.webhooks.finish_attempt(claim, attempt, state, retry_in_s)
    record_webhook_attempt("retry" if state == DeliveryState.PENDING else state.value)
    log = logger.info if state == DeliveryState.DELIVERED else logger.warning
    log("webhook %s (%s of job %s) attempt %d: %s -> %s", delivery.id, delivery.event_type, delivery.job_id,
        delivery.schedule_step + 1, status_code or error, state.value)
    return AttemptOutcome(state=state, retry_in_s=retry_in_s)
