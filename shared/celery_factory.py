"""The Celery app, configured the same way for the API (which only sends) and the workers.

The settings below are what long ASR jobs need: a job is acknowledged only after it ends
(`acks_late`), requeued when its process dies (`reject_on_worker_lost`), one job at a time
per process (`prefetch 1`), and Redis waits longer than the longest job before it hands an
unacknowledged job to someone else (`visibility_timeout`).

A publish is bounded by `enqueue_timeout_s` in all: a Redis that is frozen (SIGSTOP, a
stalled VM) still accepts TCP connections but never answers, so only socket timeouts end the
wait. A publish waits for Redis at most `PUBLISH_WAITS` times (the command, the reconnect's
handshake, the one retry), each up to the socket timeout, so the socket timeout is a third of
the budget (never under `MIN_SOCKET_TIMEOUT_S`), and the API answers 503 instead of holding
the client (and a server thread) for as long as Redis sleeps.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from shared.config import QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE, QUEUE_WEBHOOKS, Settings
from shared.redis_connect import celery_broker_url, celery_sentinel_options

#: A publish is tried this many times (once, then one retry after a reconnect).
PUBLISH_ATTEMPTS = 2
#: Times a publish to a silent Redis waits out the socket timeout (measured: the command,
#: the new connection's handshake, the retried command).
PUBLISH_WAITS = 3
#: A consumer's BRPOP asks Redis to answer within 1 s; its socket must wait longer than that.
MIN_SOCKET_TIMEOUT_S = 1.5


def broker_socket_timeout_s(settings: Settings) -> float:
    """How long one Redis command of the broker connection may go unanswered."""
    return max(MIN_SOCKET_TIMEOUT_S, settings.enqueue_timeout_s / PUBLISH_WAITS)


def make_celery(settings: Settings, name: str = "oddasr") -> Celery:
    app = Celery(name, broker=celery_broker_url(settings))
    socket_timeout_s = broker_socket_timeout_s(settings)
    transport_options = {
        **celery_sentinel_options(settings),
        "visibility_timeout": settings.visibility_timeout_s,
        "socket_connect_timeout": min(3.0, socket_timeout_s),
        "socket_timeout": socket_timeout_s,
    }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport_options,
        result_backend=None,
        task_ignore_result=True,
        task_time_limit=settings.job_time_limit_s,
        task_soft_time_limit=max(1, settings.job_time_limit_s - 60),
        task_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(QUEUE_CPU), Queue(QUEUE_GPU), Queue(QUEUE_SENTENCE), Queue(QUEUE_WEBHOOKS)],
        task_default_queue=QUEUE_CPU,
        task_send_sent_event=True,
        worker_send_task_events=True,
        worker_hijack_root_logger=False,
        worker_proc_alive_timeout=settings.worker_process_init_timeout_s,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.enqueue_timeout_s,
        task_publish_retry_policy={"max_retries": PUBLISH_ATTEMPTS - 1, "interval_start": 0, "interval_step": 0.2},
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child or None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app
