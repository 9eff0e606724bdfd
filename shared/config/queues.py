"""Queues and the workers that serve them: names, concurrency, job leases, backlog limits."""

from __future__ import annotations

from pydantic import BaseModel, Field

QUEUE_CPU = "cpu"
QUEUE_GPU = "gpu"
QUEUE_SENTENCE = "sentence"
#: Webhook deliveries: their own queue and worker node (threads), so a slow receiver holds a
#: cheap thread of that node, never a model worker of the cpu, gpu or sentence queues.
QUEUE_WEBHOOKS = "webhooks"


class QueueSettings(BaseModel):
    """Queues and workers, a job's time limit and lease, and queue admission (backlog limits)."""

    enable_gpu: bool = False
    #: With enable_gpu: send file jobs to the cpu queue while no GPU worker is alive.
    gpu_fallback_to_cpu: bool = True
    file_worker_concurrency: int = 1
    sentence_worker_concurrency: int = 1
    worker_max_tasks_per_child: int = 0
    preload_model: bool = True
    #: Load the speaker embedder (Whisper workers' diarization) in the background once the
    #: worker is ready, so the first diarized job does not wait for it (5-30 s), at about
    #: 380 MB more per worker process; off, it loads on the first diarize job (its status says so).
    preload_speaker_model: bool = False
    #: A running job whose row was not touched for this long lost its worker (its lease is
    #: renewed every quarter of this, and progress is written per decoded chunk); workers send
    #: such jobs to the queue again. Short, so a worker killed whole (main process included)
    #: costs its job about a minute and a half, not the visibility timeout.
    stale_job_after_s: float = 60.0
    #: A job still queued this long after it was sent, whose message no queue holds (lost with
    #: Redis, or reserved by a worker that died), is sent again by a live worker.
    requeue_queued_after_s: float = 300.0
    reaper_interval_s: float = 30.0
    #: Live sessions owed their reprocessing (their worker died before queueing it) that one
    #: reconciler pass claims at most; the rest wait for the next pass (a SQL LIMIT).
    reprocess_sweep_max_sessions: int = Field(default=100, ge=1)
    #: A claim on one such session (Redis, with a token) lasts this long: it covers the copy
    #: task's wait in the file queue, and is renewed every third of it while the recording is
    #: copied. A worker that dies holding it delays the session by this much, no more.
    reprocess_claim_lease_s: float = Field(default=300.0, gt=0)
    #: Seconds a prefork child may spend loading models before Celery gives up on it.
    worker_process_init_timeout_s: float = 600.0
    #: Hard limit for one job; a job over it is killed and marked failed.
    job_time_limit_s: int = 4 * 3600

    # --- queue admission (backlog limits; see api/admission.py) ------------------------------
    #: A queue holding this many queued jobs refuses new ones with 503 + Retry-After, so a
    #: flood makes clients back off instead of making every job late. 0: no limit.
    queue_max_backlog_jobs: int = Field(default=10_000, ge=0)
    #: The same for the estimated processing seconds queued (audio seconds x the queue's
    #: measured real-time factor; x 1 before any job has measured it). 0: no limit.
    queue_max_backlog_work_s: float = Field(default=7 * 24 * 3600.0, ge=0)
    #: Per-queue overrides of the two limits, JSON in the environment: '{"sentence": 500}'.
    queue_max_backlog_jobs_by_queue: dict[str, int] = Field(default_factory=dict)
    queue_max_backlog_work_s_by_queue: dict[str, float] = Field(default_factory=dict)
    #: Retry-After of a full queue whose drain rate nobody has measured yet.
    queue_full_retry_after_s: float = Field(default=60.0, gt=0)

    @property
    def visibility_timeout_s(self) -> int:
        """Redis redelivers an unacknowledged job after this; it must outlast the longest job."""
        return self.job_time_limit_s + 600

    @property
    def file_queue(self) -> str:
        """The queue a file worker of this deployment consumes by default."""
        if self.enable_gpu:
            return QUEUE_GPU
        return QUEUE_CPU

    @property
    def webhook_queue(self) -> str:
        """Deliveries wait on other people's servers: their own queue and node, never a queue
        whose worker holds a model (see QUEUE_WEBHOOKS)."""
        return QUEUE_WEBHOOKS

    def max_backlog_jobs_for(self, queue: str) -> int:
        """The queued-jobs limit of `queue` (its override, else the default; 0: none)."""
        return self.queue_max_backlog_jobs_by_queue.get(queue, self.queue_max_backlog_jobs)

    def max_backlog_work_s_for(self, queue: str) -> float:
        """The queued-work limit of `queue` in processing seconds (0: none)."""
        return self.queue_max_backlog_work_s_by_queue.get(queue, self.queue_max_backlog_work_s)
