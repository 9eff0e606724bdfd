"""The service's own answers: probes, queues and the models it runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from shared.jobs.public_models import Omitted, PublicModel


class Health(PublicModel):
    status: Literal["ok"]


class Readiness(PublicModel):
    ready: bool
    checks: dict[str, str]
    waiting_for: dict[str, str]
    queues: dict[str, dict[str, Any]] = Field(description="Per queue: its workers and those still loading"
                                                          " (names for admin keys, else counts).")
    file_queue: str
    file_queue_served: bool
    sentence_queue_served: bool
    stream_workers: dict[str, int]
    warnings: dict[str, str] = Field(default_factory=dict, description="What works now but will not hold"
                                     " (e.g. `storage`: local storage while processes run on other hosts);"
                                     " never makes it unready.")
    details: str | Omitted = Field(None, description="Without an admin key: what is left out.")


class QueueStatus(PublicModel):
    """Figures from the last finished jobs of the queue are null until a job has measured them."""

    depth: int = Field(ge=0, description="Jobs queued.")
    queued_audio_s: float = Field(ge=0)
    running: int = Field(ge=0)
    workers: int = Field(ge=0, description="Worker nodes alive on the queue.")
    processes: int = Field(ge=0, description="Their processes: jobs run at once.")
    real_time_factor: float | None = Field(ge=0, description="Processing s per audio s, measured.")
    job_overhead_s: float | None = Field(ge=0, description="Seconds each job costs whatever its length, measured.")
    samples: int = Field(ge=0, description="Finished jobs the figures come from.")
    drain_jobs_per_s: float | None = Field(ge=0)
    drain_audio_s_per_s: float | None = Field(ge=0)
    estimated_wait_s: float | None = Field(ge=0, description="Until a job sent now would start.")
    backlog_work_s: float | None = Field(ge=0, description="Processing s queued (RTF x audio).")
    max_backlog_jobs: int = Field(ge=0, description="0: no limit.")
    max_backlog_work_s: float = Field(ge=0, description="0: no limit.")


class QueueList(PublicModel):
    """Per queue: backlog, workers and the wait it implies."""

    queues: dict[str, QueueStatus]


class ModelInfo(PublicModel):
    id: str
    object: Literal["model"]
    owned_by: str


class ModelList(PublicModel):
    object: Literal["list"]
    data: list[ModelInfo]
