"""GET /v1/queues: each queue's backlog, workers, measured speed and the wait it implies,
so a client (or an operator) sees a queue's state before it sends a long file."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api.deps import deps
from api.queue_status import queue_status, summarize_queue
from api.response_models.service import QueueList
from shared.config import QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE

blueprint = Blueprint("queues", __name__)

QUEUES = (QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE)


@blueprint.get("/v1/queues")
def list_queues():  # type: ignore[no-untyped-def]
    d = deps()
    return jsonify(QueueList(queues={
        queue: queue_status(summarize_queue(d, queue), d.settings.max_backlog_jobs_for(queue),
                            d.settings.max_backlog_work_s_for(queue))
        for queue in QUEUES
    }).public())
