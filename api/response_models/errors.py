"""Error answers: OddASR's `{"error": "..."}` (with the job's id where one exists), and
OpenAI's shape on the OpenAI-compatible routes (OpenAI's SDKs read it)."""

from __future__ import annotations

from pydantic import Field

from shared.jobs.public_models import Omitted, PublicModel

_WHAT_WENT_WRONG = "What went wrong, in words a person can act on."
_THE_JOB = "The job concerned, where there is one."


class Error(PublicModel):
    error: str = Field(description=_WHAT_WENT_WRONG)
    job_id: str | Omitted = Field(None, description=_THE_JOB)


class JobError(Error):
    """An error about a job that exists: poll or inspect it with its id."""

    job_id: str


class OpenAIErrorDetail(PublicModel):
    message: str = Field(description=_WHAT_WENT_WRONG)
    type: str = Field(description="invalid_request_error, rate_limit_error, ...")
    param: str | None = Field(description="The form field at fault, where one is.")
    code: str | None


class OpenAIError(PublicModel):
    """OpenAI's error shape, on the OpenAI-compatible routes (OpenAI's SDKs read it)."""

    error: OpenAIErrorDetail
    job_id: str | Omitted = Field(None, description=_THE_JOB)
