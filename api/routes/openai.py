"""OpenAI-compatible transcription, so OpenAI SDKs and tools can point at OddASR."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from api.auth import current_principal
from api.body_limits import upload_body
from api.deps import deps
from api.errors import error_response
from api.job_service import JOB_ID_HEADER, load_transcript, submit_job, wait_for_final
from api.options import check_supported, parse_callback_url
from api.request_models.openai_form import KNOWN_MODELS, RESPONSE_FORMATS, TranscriptionForm
from api.response_models.service import ModelInfo, ModelList
from api.uploads import receive_audio
from shared.db.models import JobStatus
from shared.engines_catalog import file_engine
from shared.render import render
from shared.schemas import JobOptions

blueprint = Blueprint("openai", __name__)


def _known_models() -> list[str]:
    settings = deps().settings
    return file_engine(settings).model_ids(settings)


@blueprint.get("/v1/models")
def list_models():  # type: ignore[no-untyped-def]
    return jsonify(ModelList(object="list", data=[ModelInfo(id=m, object="model", owned_by="oddasr")
                                                  for m in _known_models()]).public())


@blueprint.post("/v1/audio/transcriptions")
@upload_body
def transcriptions():  # type: ignore[no-untyped-def]
    d = deps()
    form = request.form
    fields = {**form.to_dict(), "timestamp_granularities[]": (form.getlist("timestamp_granularities[]")
                                                              + form.getlist("timestamp_granularities"))}
    request_form = TranscriptionForm.parse(fields, context={KNOWN_MODELS: _known_models()})
    options = JobOptions(
        language=request_form.language,
        hotwords=request_form.hotwords,
        output_format=RESPONSE_FORMATS[request_form.response_format],
        word_timestamps="word" in request_form.timestamp_granularities,
        use_itn=d.settings.use_itn,
    )
    check_supported(options, d.settings)
    callback_url = parse_callback_url(form, d.settings)
    audio = receive_audio("file", max_upload_bytes=d.settings.max_upload_bytes,
                          max_duration_s=d.settings.max_audio_duration_s)
    submitted = submit_job(d, audio, "file", options, callback_url, current_principal())
    job = wait_for_final(d, submitted.id, d.settings.sync_wait_timeout_s)
    if job.status == JobStatus.SUCCEEDED:
        body, content_type = render(load_transcript(d, job), options.output_format)
        return Response(body, content_type=content_type, headers={JOB_ID_HEADER: job.id})
    if job.status == JobStatus.FAILED:
        return error_response(job.error or "transcription failed", 422, job_id=job.id)
    if job.status == JobStatus.CANCELED:
        return error_response("the job was canceled", 409, job_id=job.id)
    return error_response(f"the job is still {job.status}; poll /v1/jobs/{job.id}", 504, job_id=job.id)
