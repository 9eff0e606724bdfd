"""Every HTTP operation of the API, one row each (api/openapi/operations.py builds them); the
request parts come from the request models, the answers' schemas from the response models."""

from __future__ import annotations

from typing import Any

from api.hotword_sets import DEFAULT_SET, NO_SET
from api.openapi.operations import Op, error, json_body, path_parameter, ref
from api.openapi.request_schemas import binary, multipart_body, query_parameters
from api.request_models.job_form import AUDIO_DESCRIPTION, JobForm
from api.request_models.openai_form import TranscriptionForm
from api.request_models.queries import JobListQuery, TranscriptQuery
from api.request_models.speaker_form import SpeakerForm
from api.response_models import keys, resources, service, webhooks
from api.routes.hotwords import MAX_BODY_BYTES, NAME_PATTERN
from api.routes.speakers import MAX_PART_S, MAX_PARTS, MIN_PART_S
from shared import render_models
from shared.jobs import public_models as jobs

BEARER_SCHEME, API_KEY_SCHEME = "bearerAuth", "apiKeyHeader"
NOT_FOUND = "No such job, or one that belongs to another key (the same answer, so ids leak nothing)."
JOB_ID = [path_parameter("job_id", "The job's id, as returned on submission.")]
JOB_ID_HEADER = {"X-OddASR-Job-Id": {"$ref": "#/components/headers/JobId"}}
LOCATION = {"Location": {"$ref": "#/components/headers/Location"}}
SLOW_BODY = "The body arrived too slowly, or stalled."
#: What every endpoint that takes audio may answer besides its success.
UPLOAD_ERRORS: dict[int, Any] = {
    400: "A missing or empty audio file, or an option that is not valid (the message names it).",
    408: "The upload arrived too slowly, or stalled.", 413: "The upload is larger than the server's limit.",
    415: "The file is not audio any decoder here reads.",
    422: "The audio is broken, too short or too long for the mode, or an option this server's engine cannot"
         " honour (diarization, word timestamps, a language).",
    503: error("The job queue or a dependency is unavailable, or the queue is full: try again after Retry-After"
               " seconds.", retry_after=True)}
SYNC_ERRORS: dict[int, Any] = {
    **UPLOAD_ERRORS, 409: error("The job was canceled while the request waited.", with_job=True),
    422: "Audio or options this server cannot use, or the transcription failed (then with the job's id).",
    504: error("The job is still queued or running after the server's synchronous wait: poll /v1/jobs/{job_id}.",
               with_job=True)}
MASKING_REFUSAL = {403: "mask_sensitive_words=false from a key that is not an admin key."}
#: The form of POST /v1/jobs and OddASR's /v1/asr; its /file and /sentence variants fix the mode.
JOB_FORM = multipart_body(JobForm, {"audio": binary(AUDIO_DESCRIPTION)})
MODE_FIXED_FORM = multipart_body(JobForm, {"audio": binary(AUDIO_DESCRIPTION)}, without=("mode",))
TEXT = {"schema": {"type": "string"}}
RENDERED = {"text/plain": TEXT, "application/x-subrip": TEXT, "text/vtt": TEXT}
FILE = {"description": "The file.", "content": {"*/*": TEXT}}
HTML = {"description": "The page.", "content": {"text/html": TEXT}}


def _legacy(path: str, operation_id: str, summary: str, *, with_mode: bool) -> Op:
    return Op("post", path, operation_id, "oddasr", summary, {
        200: ("The transcript, rendered in output_format, as OddASR answered it.", render_models.Text, JOB_ID_HEADER),
        **SYNC_ERRORS, **MASKING_REFUSAL}, "Synchronous: the job is queued like any other and the answer waits for it.",
        body=JOB_FORM if with_mode else MODE_FIXED_FORM)


def _hotword_name(**schema: Any) -> list[dict[str, Any]]:
    return [path_parameter("name", f"The set's name: 1 to 64 letters, digits, `_`, `.` or `-`. `{DEFAULT_SET}` is the"
                                   f" server's own set (read only); `{NO_SET}` is reserved.", **schema)]


NO_SET_OF_THAT_NAME = "The key has no set of that name (or the server has no default set)."
SPEAKER_ID = [path_parameter("speaker_id", "The speaker's id, as returned on enrollment.")]
NO_SPEAKER = "No such speaker, or one of another key (the same answer, so ids leak nothing)."
SPEAKER_PARTS = {"type": "array", "minItems": 1, "maxItems": MAX_PARTS, "items": {
    "type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}, "description":
                 f"One or more parts, each {MIN_PART_S:g} to {MAX_PART_S:g} s of this voice alone."}
ADMIN_ONLY = "The key is not an admin key."

TABLE: list[Op] = [
    Op("post", "/v1/jobs", "createJob", "jobs", "Submit audio; answers at once with the queued job",
       {202: ("The job, queued.", jobs.Job, LOCATION), **UPLOAD_ERRORS, **MASKING_REFUSAL},
       "Poll the job at its `Location` (or pass `callback_url` for a webhook). While queued, the job shows its"
       " `queue_position` and estimated start and finish.", body=JOB_FORM),
    Op("get", "/v1/jobs", "listJobs", "jobs", "List jobs, newest first, a page at a time",
       {200: ("A page of jobs.", jobs.JobList), 400: "An unknown status, or limit/offset out of range.",
        403: "api_key_id was given by a key that is not an admin key."},
       "A key lists its own jobs; an admin key (or anyone with auth off) lists all.",
       parameters=query_parameters(JobListQuery)),
    Op("get", "/v1/jobs/{job_id}", "getJob", "jobs", "A job's status, timings and, once it has succeeded, its result",
       {200: ("The job.", jobs.Job), 404: NOT_FOUND}, parameters=JOB_ID),
    Op("delete", "/v1/jobs/{job_id}", "cancelJob", "jobs",
       "Cancel a queued or running job and delete its audio and transcript",
       {200: ("The job as it is now (a finished job is left as it was).", jobs.Job), 404: NOT_FOUND},
       parameters=JOB_ID),
    Op("get", "/v1/jobs/{job_id}/transcript", "getTranscript", "jobs", "The transcript, rendered in a format",
       {200: {"description": "The transcript; its media type follows the format.", "content": {**RENDERED, **json_body(
           {"anyOf": [ref("Transcript"), ref("Text"), ref("VerboseTranscription")]})}},
        400: "An unknown format.", 404: NOT_FOUND, 409: "The job has not succeeded (yet, or ever: it failed).",
        410: "The job was canceled, or its data expired under the retention policy."},
       parameters=[*JOB_ID, *query_parameters(TranscriptQuery)]),
    Op("get", "/v1/jobs/{job_id}/audio", "getJobAudio", "jobs",
       "The job's stored audio, as uploaded (a live session: its recording as WAV)",
       {200: {"description": "The audio; its media type follows the uploaded file's name.", "content": {
           media: {"schema": {"type": "string", "format": "binary"}}
           for media in ("audio/*", "video/*", "application/octet-stream")}}, 404: NOT_FOUND,
        409: "A live session that is still running: its recording is stored when it ends.",
        410: "The audio was deleted: the job was canceled, its data deleted or expired."}, parameters=JOB_ID),
    Op("get", "/v1/jobs/{job_id}/webhooks", "listWebhookDeliveries", "jobs",
       "The job's webhook events and every delivery attempt",
       {200: ("The deliveries.", webhooks.WebhookDeliveries), 404: NOT_FOUND}, parameters=JOB_ID),
    Op("post", "/v1/jobs/{job_id}/webhooks/redeliver", "redeliverWebhook", "jobs",
       "Send the job's last event again, with its original webhook-id",
       {202: ("The delivery, pending again.", webhooks.WebhookDelivery),
        404: "No such job, or the job has no webhook event.",
        409: "An attempt of that delivery is in flight; try again in a few seconds.",
        410: "The job was deleted, or its data expired: its events went with it."}, parameters=JOB_ID),
    _legacy("/v1/asr", "transcribeOddAsr", "OddASR's transcription endpoint", with_mode=True),
    _legacy("/v1/asr/file", "transcribeOddAsrFile", "OddASR's endpoint, file mode", with_mode=False),
    _legacy("/v1/asr/sentence", "transcribeOddAsrSentence", "OddASR's endpoint, sentence mode", with_mode=False),
    Op("post", "/v1/audio/transcriptions", "createTranscription", "openai",
       "OpenAI-compatible transcription (synchronous)",
       {200: {"description": "The transcript in response_format.", "headers": JOB_ID_HEADER, "content": {
           **json_body({"anyOf": [ref("Text"), ref("VerboseTranscription")]}), **RENDERED}}, **SYNC_ERRORS},
       body=multipart_body(TranscriptionForm, {"file": binary(AUDIO_DESCRIPTION)}), openai=True),
    Op("get", "/v1/models", "listModels", "openai", "The models this server runs",
       {200: ("The model list.", service.ModelList)}, openai=True),
    Op("get", "/v1/hotwords", "listHotwordSets", "hotwords", "The key's hotword sets, and the server's default set",
       {200: ("The sets, without their words.", resources.HotwordSetList)}),
    Op("get", "/v1/hotwords/{name}", "getHotwordSet", "hotwords", "A hotword set with its words",
       {200: ("The set.", resources.HotwordSet), 404: NO_SET_OF_THAT_NAME}, parameters=_hotword_name()),
    Op("put", "/v1/hotwords/{name}", "putHotwordSet", "hotwords",
       "Create or replace a set (each replace is a new version)",
       {200: ("Replaced: the new version.", resources.HotwordSet), 201: ("Created.", resources.HotwordSet),
        400: "A reserved or malformed name, an empty or malformed list, or too many entries.",
        413: "The body is over 256 KiB, chunked or not (read no further).", 408: SLOW_BODY},
       "JSON (`{\"words\": [{\"word\": \"Alibaba\", \"weight\": 20}, \"OddASR\"]}`) or the original's hotword file"
       " as text: `word weight` a line, the weight optional.",
       parameters=_hotword_name(pattern=NAME_PATTERN.pattern, **{"not": {"enum": [DEFAULT_SET, NO_SET]}}),
       body={"required": True, "description": f"At most {MAX_BODY_BYTES} bytes.", "content": {
           **json_body(ref("HotwordSetBody")), "text/plain": {**TEXT, "example": "Alibaba 20\nOddASR\n"}}}),
    Op("delete", "/v1/hotwords/{name}", "deleteHotwordSet", "hotwords", "Delete a set",
       {200: ("Deleted.", resources.Deleted), 400: "The default set cannot be deleted here.", 404: NO_SET_OF_THAT_NAME},
       parameters=_hotword_name(**{"not": {"const": DEFAULT_SET}})),
    Op("get", "/v1/speakers", "listSpeakers", "speakers", "The key's enrolled speakers",
       {200: ("The speakers (never their embeddings).", resources.SpeakerList)}),
    Op("post", "/v1/speakers", "enrollSpeaker", "speakers", "Enroll a speaker (a voiceprint) from samples of one voice",
       {201: ("Enrolled: the voiceprint is ready.", resources.Speaker, LOCATION),
        202: ("Still embedding on a worker: poll the Location.", resources.Speaker, LOCATION),
        400: "No name, a malformed name, no audio part, or too many parts.",
        413: "An audio part is larger than the upload limit.", 415: "An audio part is not audio.",
        422: f"An audio part lasts less than {MIN_PART_S:g} s or more than {MAX_PART_S:g} s, is unusable, or the"
             " engine has no speaker model (or the worker could not embed it).", 408: SLOW_BODY},
       "A worker embeds each part with its engine's speaker model (Resemblyzer for Whisper, cam++ for FunASR),"
       " averages them and keeps only the voiceprint: the audio is deleted. Jobs with `identify_speakers=true`"
       " name diarized speakers after these voiceprints.",
       body=multipart_body(SpeakerForm, {"audio": SPEAKER_PARTS})),
    Op("get", "/v1/speakers/{speaker_id}", "getSpeaker", "speakers", "An enrolled speaker",
       {200: ("The speaker.", resources.Speaker), 404: NO_SPEAKER}, parameters=SPEAKER_ID),
    Op("delete", "/v1/speakers/{speaker_id}", "deleteSpeaker", "speakers", "Delete a speaker and its voiceprint",
       {200: ("Deleted.", resources.Deleted), 404: NO_SPEAKER}, parameters=SPEAKER_ID),
    Op("get", "/v1/keys", "listKeys", "admin", "List API keys (never their secrets)",
       {200: ("Every key, revoked ones too.", keys.ApiKeyList), 403: ADMIN_ONLY}),
    Op("post", "/v1/keys", "createKey", "admin", "Create an API key; the answer holds the key, once",
       {201: ("The new key.", keys.ApiKeyCreated), 400: "Not a JSON object, or a field that is not valid.",
        403: ADMIN_ONLY, 408: SLOW_BODY, 413: "The body is over max_request_body_bytes, chunked or not."},
       body={"required": True, "content": json_body(ref("NewApiKey"))}),
    Op("delete", "/v1/keys/{key_id}", "revokeKey", "admin", "Revoke an API key",
       {200: ("The key, revoked.", keys.ApiKey), 403: ADMIN_ONLY, 404: "No such key."},
       parameters=[path_parameter("key_id")]),
    Op("get", "/healthz", "healthz", "service", "Liveness: the API process answers", {200: ("Alive.", service.Health)},
       security=[]),
    Op("get", "/readyz", "readyz", "service", "Readiness: dependencies answer and each queue has a loaded worker",
       {200: ("Ready.", service.Readiness), 503: ("Not ready; the body says what is missing.", service.Readiness)},
       "Public. Without an admin key (with auth required), a failed check reads `failed` and `queues` counts workers"
       " instead of naming them: exception text and host names go to admin keys only.", security=[]),
    Op("get", "/v1/queues", "listQueues", "service",
       "Per queue: depth, workers alive, measured real-time factor, estimated wait",
       {200: ("The queues.", service.QueueList)}),
    Op("get", "/metrics", "metrics", "service",
       "Prometheus metrics of the API processes, and the backlog at scrape time",
       {200: {"description": "The Prometheus text exposition format.", "content": {"text/plain": TEXT}},
        403: "metrics_require_key is set and the key is not an admin key."},
       "Public like /healthz, unless the server sets `metrics_require_key`: then it needs an admin key (with auth"
       " required).", security=[{BEARER_SCHEME: []}, {API_KEY_SCHEME: []}, {}]),
    Op("get", "/openapi.json", "openapi", "service", "This document",
       {200: {"description": "OpenAPI 3.1.", "content": json_body({"type": "object"})}}, security=[]),
    Op("get", "/docs", "docs", "service", "The document as a browsable page (Swagger UI)", {200: HTML}, security=[]),
    Op("get", "/docs/{asset}", "docsAsset", "service",
       "Swagger UI's scripts and styles, served from the installed package", {200: FILE, 404: "No such file."},
       parameters=[path_parameter("asset")], security=[]),
    Op("get", "/", "webPage", "service", "The web page: upload, jobs and live transcription", {200: HTML}, security=[]),
    Op("get", "/web/static/{filename}", "webAsset", "service", "The web page's scripts and styles",
       {200: FILE, 404: "No such file."}, parameters=[path_parameter("filename")], security=[]),
]
