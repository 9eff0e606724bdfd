"""The Celery app, configured the same way for the API (which only sends) and the workers.

The settings below are what long ASR jobs need: a job is acknowledged only after it ends
(`acks_late`), requeued when its process dies (`reject_on_worker_lost`), one job at a time
per process (`prefetch 1`), and Redis waits longer than the longest job before it hands an
unacknowledged job to someone else (`visibility_timeout`).
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from shared.config import QUEUE_CPU, QUEUE_GPU, QUEUE_SENTENCE, Settings


def make_celery(settings: Settings, name: str = "oddasr") -> Celery:
    app = Celery(name, broker=settings.effective_redis_url)
    transport_options = {
        "visibility_timeout": settings.visibility_timeout_s,
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
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
        task_queues=[Queue(QUEUE_CPU), Queue(QUEUE_GPU), Queue(QUEUE_SENTENCE)],
        task_default_queue=QUEUE_CPU,
        task_send_sent_event=True,
        worker_send_task_events=True,
        worker_hijack_root_logger=False,
        worker_proc_alive_timeout=settings.worker_process_init_timeout_s,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.enqueue_timeout_s,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child or None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app
