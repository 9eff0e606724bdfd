"""The native job API in the document: submit, poll, list, cancel, transcripts, webhooks."""

from __future__ import annotations

from typing import Any

from api.openapi.components import HEADERS, error, ref
from api.openapi.operations import NOT_FOUND, job_id_parameter, ok_json, operation
from api.openapi.request_schemas import binary, multipart_body, query_parameters
from api.request_models.job_form import AUDIO_DESCRIPTION, JobForm
from api.request_models.queries import JobListQuery, TranscriptQuery

Schema = dict[str, Any]

TAG = "jobs"

#: What every endpoint that takes audio may answer besides its success.
UPLOAD_ERRORS: dict[str, Schema] = {
    "400": error("A missing or empty audio file, or an option that is not valid (the message names it)."),
    "408": error("The upload arrived too slowly, or stalled."),
    "413": error("The upload is larger than the server's limit."),
    "415": error("The file is not audio any decoder here reads."),
    "422": error("The audio is broken, too short or too long for the mode, or an option this server's engine"
                 " cannot honour (diarization, word timestamps, a language)."),
    "503": error("The job queue or a dependency is unavailable, or the queue is full: try again after"
                 " Retry-After seconds.", retry_after=True),
}

#: The job form's own refusal (the OpenAI form has no such field).
MASKING_REFUSAL = {"403": error("mask_sensitive_words=false from a key that is not an admin key.")}

#: A transcript in each format: the media types the renderers answer with.
TRANSCRIPT_CONTENT: Schema = {
    "text/plain": {"schema": {"type": "string"}},
    "application/json": {"schema": {"anyOf": [ref("Transcript"), ref("Text"), ref("VerboseTranscription")]}},
    "application/x-subrip": {"schema": {"type": "string"}},
    "text/vtt": {"schema": {"type": "string"}},
}


def job_form(*, with_mode: bool = True) -> Schema:
    """The form of POST /v1/jobs and of OddASR's /v1/asr (whose /file and /sentence variants fix the mode)."""
    return multipart_body(JobForm, {"audio": binary(AUDIO_DESCRIPTION)}, without=() if with_mode else ("mode",))


def job_paths() -> dict[str, Schema]:
    job_id = [job_id_parameter()]
    return {
        "/v1/jobs": {
            "post": operation(
                "createJob", TAG, "Submit audio; answers at once with the queued job",
                {"202": ok_json("The job, queued.", "Job", {"Location": HEADERS["Location"]}), **UPLOAD_ERRORS,
                 **MASKING_REFUSAL},
                description="Poll the job at its `Location` (or pass `callback_url` for a webhook). While queued,"
                            " the job shows its `queue_position` and estimated start and finish.",
                request_body=job_form()),
            "get": operation(
                "listJobs", TAG, "List jobs, newest first, a page at a time",
                {"200": ok_json("A page of jobs.", "JobList"),
                 "400": error("An unknown status, or limit/offset out of range."),
                 "403": error("api_key_id was given by a key that is not an admin key.")},
                description="A key lists its own jobs; an admin key (or anyone with auth off) lists all.",
                parameters=query_parameters(JobListQuery)),
        },
        "/v1/jobs/{job_id}": {
            "get": operation(
                "getJob", TAG, "A job's status, timings and, once it has succeeded, its result",
                {"200": ok_json("The job.", "Job"), "404": NOT_FOUND}, parameters=job_id),
            "delete": operation(
                "cancelJob", TAG, "Cancel a queued or running job and delete its audio and transcript",
                {"200": ok_json("The job as it is now (a finished job is left as it was).", "Job"),
                 "404": NOT_FOUND}, parameters=job_id),
        },
        "/v1/jobs/{job_id}/transcript": {
            "get": operation(
                "getTranscript", TAG, "The transcript, rendered in a format",
                {"200": {"description": "The transcript; its media type follows the format.",
                         "content": TRANSCRIPT_CONTENT},
                 "400": error("An unknown format."), "404": NOT_FOUND,
                 "409": error("The job has not succeeded (yet, or ever: it failed)."),
                 "410": error("The job was canceled, or its data expired under the retention policy.")},
                parameters=[*job_id, *query_parameters(TranscriptQuery)]),
        },
        "/v1/jobs/{job_id}/audio": {
            "get": operation(
                "getJobAudio", TAG, "The job's stored audio, as uploaded (a live session: its recording as WAV)",
                {"200": {"description": "The audio; its media type follows the uploaded file's name.",
                         "content": {media: {"schema": {"type": "string", "format": "binary"}}
                                     for media in ("audio/*", "video/*", "application/octet-stream")}},
                 "404": NOT_FOUND,
                 "409": error("A live session that is still running: its recording is stored when it ends."),
                 "410": error("The audio was deleted: the job was canceled, its data deleted or expired.")},
                parameters=job_id),
        },
        "/v1/jobs/{job_id}/webhooks": {
            "get": operation(
                "listWebhookDeliveries", TAG, "The job's webhook events and every delivery attempt",
                {"200": ok_json("The deliveries.", "WebhookDeliveries"), "404": NOT_FOUND}, parameters=job_id),
        },
        "/v1/jobs/{job_id}/webhooks/redeliver": {
            "post": operation(
                "redeliverWebhook", TAG, "Send the job's last event again, with its original webhook-id",
                {"202": ok_json("The delivery, pending again.", "WebhookDelivery"),
                 "404": error("No such job, or the job has no webhook event."),
                 "409": error("An attempt of that delivery is in flight; try again in a few seconds."),
                 "410": error("The job was deleted, or its data expired: its events went with it.")},
                parameters=job_id),
        },
    }

