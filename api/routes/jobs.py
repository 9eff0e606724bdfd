"""The native job API: submit, poll, fetch transcripts and audio, list, cancel."""

from __future__ import annotations

import contextlib
import mimetypes
from collections.abc import Iterator
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, request, url_for

from api.auth import current_principal
from api.body_limits import upload_body
from api.deps import deps
from api.job_hotword_hits import hotword_hits_of
from api.job_service import cancel_job, load_transcript, submit_job
from api.options import parse_callback_url, parse_output_format
from api.queue_status import job_estimate
from api.request_models.job_form import options_from_form
from api.request_models.queries import JobListQuery, TranscriptQuery
from api.streaming import jobs as stream_jobs
from api.uploads import receive_audio
from shared.db.models import JobStatus
from shared.db.repository import STREAM_MODE
from shared.errors import ConflictError, ForbiddenError, GoneError
from shared.job_waiting import read_job_waiting_for
from shared.jobs import public_models as out
from shared.jobs.public import job_model
from shared.render import render
from shared.storage import StorageKeyNotFound

blueprint = Blueprint("jobs", __name__)

#: Audio goes to the client in pieces of this size, never whole in memory.
AUDIO_CHUNK_BYTES = 256 * 1024


def max_duration_for(mode: str) -> float:
    return deps().settings.max_duration_s_for(mode)


@blueprint.post("/v1/jobs")
@upload_body
def create_job():  # type: ignore[no-untyped-def]
    d = deps()
    mode, options = options_from_form(request.form, d.settings)
    callback_url = parse_callback_url(request.form, d.settings)
    audio = receive_audio("audio", max_upload_bytes=d.settings.max_upload_bytes,
                          max_duration_s=max_duration_for(mode))
    job = submit_job(d, audio, mode, options, callback_url, current_principal(), request.form.get("hotword_set"))
    response = jsonify(job_model(job).public())
    response.status_code = 202
    response.headers["Location"] = url_for("jobs.get_job", job_id=job.id)
    return response


@blueprint.get("/v1/jobs/<job_id>")
def get_job(job_id: str):  # type: ignore[no-untyped-def]
    d = deps()
    owner = current_principal().owner_filter
    job = d.jobs.get(job_id, owner)
    transcript = load_transcript(d, job) if job.status == JobStatus.SUCCEEDED and job.transcript_key else None
    if transcript is None:
        transcript = stream_jobs.stored_sentences(d, job)  # a live session's sentences, whatever its status
    extra = job_estimate(d, job)  # queue position and ETA while queued or running
    # What a running job waits for, in words (the first diarize job loading the speaker model).
    extra["waiting_for"] = read_job_waiting_for(d.redis, job.id) if job.status == JobStatus.RUNNING else None
    if (reprocessing := stream_jobs.reprocess_view(d, job, owner)) is not None:
        extra["stage"], extra["reprocessed"] = reprocessing
    hits = hotword_hits_of(d, job, transcript) if transcript is not None else None
    return jsonify(job_model(job, transcript, hits, **extra).public())


@blueprint.get("/v1/jobs/<job_id>/transcript")
def get_transcript(job_id: str) -> Response:
    d = deps()
    job = d.jobs.get(job_id, current_principal().owner_filter)
    query = TranscriptQuery.parse(request.args)  # after the job: an unknown job is 404 whatever the format
    fmt = parse_output_format(query.format, default=job.options.get("output_format", "txt"), field="format")
    body, content_type = render(load_transcript(d, job), fmt)
    return Response(body, content_type=content_type)


@blueprint.get("/v1/jobs/<job_id>/audio")
def get_audio(job_id: str) -> Response:
    """The job's stored audio as it was uploaded (a live session: its recording, a WAV), so
    a page can play any job, not only a file it has at hand."""
    d = deps()
    job = d.jobs.get(job_id, current_principal().owner_filter)
    if job.audio_key is None:
        raise GoneError(f"the audio of job {job.id} is no longer stored (deleted, canceled, or past the"
                        f" retention time)")
    if job.mode == STREAM_MODE and job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        raise ConflictError(f"job {job.id} is a live session still running; its recording is stored when it ends")
    try:
        size_bytes = d.storage.size_bytes(job.audio_key)
    except StorageKeyNotFound:
        # The row names audio that never reached storage: a live session whose stream worker was
        # killed before it stored the recording (a parked one is attached once stored).
        raise GoneError(f"the audio of job {job.id} was never stored"
                        + (": its stream worker was lost before the session ended" if job.mode == STREAM_MODE
                           else "")) from None
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    # Players and browsers seek with Range; several ranges at once are answered whole (RFC 9110
    # lets a server ignore Range), which werkzeug's range_for_length signals with None.
    requested = request.range
    byte_range = requested.range_for_length(size_bytes) if requested is not None else None
    if requested is not None and byte_range is None and len(requested.ranges) == 1:
        return Response(status=416, headers={**headers, "Content-Range": f"bytes */{size_bytes}"})
    if byte_range is None:
        status, stream, body_bytes = 200, d.storage.open_read(job.audio_key)[0], size_bytes
    else:
        first_byte, end_byte = byte_range
        status, body_bytes = 206, end_byte - first_byte
        stream = d.storage.open_read_range(job.audio_key, first_byte, end_byte)
        headers["Content-Range"] = f"bytes {first_byte}-{end_byte - 1}/{size_bytes}"

    def chunks() -> Iterator[bytes]:
        with contextlib.closing(stream):
            while data := stream.read(AUDIO_CHUNK_BYTES):
                yield data

    filename = job.audio_filename or job.id
    content_type = ("audio/wav" if job.mode == STREAM_MODE
                    else mimetypes.guess_type(filename)[0] or "application/octet-stream")
    if not content_type.startswith(("audio/", "video/")):  # a name like x.html must not make a page
        content_type = "application/octet-stream"
    return Response(chunks(), status=status, content_type=content_type, headers={
        **headers, "Content-Length": str(body_bytes),
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}"})


@blueprint.get("/v1/jobs")
def list_jobs():  # type: ignore[no-untyped-def]
    query = JobListQuery.parse(request.args)
    status, limit, offset = query.status, query.limit, query.offset
    principal = current_principal()
    owner = principal.owner_filter
    requested_owner = query.api_key_id
    if requested_owner:
        if not principal.is_admin:
            raise ForbiddenError("only an admin key may list another key's jobs (api_key_id)")
        owner = requested_owner
    jobs, total = deps().jobs.list(status=status, limit=limit, offset=offset, owner_id=owner)
    next_url = None
    if offset + len(jobs) < total:
        next_url = url_for("jobs.list_jobs", status=status, limit=limit, offset=offset + limit,
                           api_key_id=requested_owner)
    return jsonify(out.JobList(jobs=[job_model(j) for j in jobs], total=total, limit=limit, offset=offset,
                               next=next_url).public())


@blueprint.delete("/v1/jobs/<job_id>")
def delete_job(job_id: str):  # type: ignore[no-untyped-def]
    return jsonify(job_model(cancel_job(deps(), job_id, current_principal().owner_filter)).public())
