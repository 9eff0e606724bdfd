"""The original OddASR endpoints, answered synchronously through the same queue.

Existing clients post to `/v1/asr` and wait for `{"text": ...}`. Here the API queues the job
like any other and waits for it up to `sync_wait_timeout_s`; past that it answers 504 with
the job id so the client can poll `/v1/jobs/{id}` instead of losing the work.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from api.auth import current_principal
from api.body_limits import upload_body
from api.deps import deps
from api.errors import error_response
from api.job_service import JOB_ID_HEADER, load_transcript, submit_job, wait_for_final
from api.options import parse_callback_url
from api.request_models.job_form import options_from_form
from api.routes.jobs import max_duration_for
from api.uploads import receive_audio
from shared.db.models import JobStatus
from shared.render import render
from shared.render_models import Text

blueprint = Blueprint("legacy", __name__)


def _transcribe_sync(forced_mode: str | None):  # type: ignore[no-untyped-def]
    d = deps()
    form = request.form.to_dict()
    if forced_mode:
        form["mode"] = forced_mode
    mode, options = options_from_form(form, d.settings)
    callback_url = parse_callback_url(form, d.settings)
    audio = receive_audio("audio", max_upload_bytes=d.settings.max_upload_bytes,
                          max_duration_s=max_duration_for(mode))
    job = submit_job(d, audio, mode, options, callback_url, current_principal(), form.get("hotword_set"))
    job = wait_for_final(d, job.id, d.settings.sync_wait_timeout_s)
    if job.status == JobStatus.SUCCEEDED:
        body, _content_type = render(load_transcript(d, job), options.output_format)
        response = jsonify(Text(text=body).model_dump())
        response.headers[JOB_ID_HEADER] = job.id
        return response
    if job.status == JobStatus.FAILED:
        return error_response(job.error or "transcription failed", 422, job_id=job.id)
    if job.status == JobStatus.CANCELED:
        return error_response("the job was canceled", 409, job_id=job.id)
    return error_response(
        f"the job is still {job.status} after {d.settings.sync_wait_timeout_s:.0f} s; poll /v1/jobs/{job.id}",
        504, job_id=job.id,
    )


@blueprint.post("/v1/asr")
@upload_body
def asr():  # type: ignore[no-untyped-def]
    return _transcribe_sync(None)


@blueprint.post("/v1/asr/file")
@upload_body
def asr_file():  # type: ignore[no-untyped-def]
    return _transcribe_sync("file")


@blueprint.post("/v1/asr/sentence")
@upload_body
def asr_sentence():  # type: ignore[no-untyped-def]
    return _transcribe_sync("sentence")
