"""Reusable parts of the OpenAPI document: schemas, error answers, headers, security schemes.

The enums come from the modules that enforce them, so a new status, mode or format shows
up here without anyone editing the document.
"""

from __future__ import annotations

from typing import Any

from api.openapi.request_schemas import component_schemas
from api.options import MODES
from api.request_models.bodies import HotwordSetBody, NewApiKey
from api.routes.keys import LIMIT_FIELDS
from shared import reprocess
from shared.db.api_keys import MAX_LIMIT_VALUE
from shared.db.models import DeliveryState, JobStatus
from shared.db.repository import STREAM_MODE
from shared.render import RENDERERS

Schema = dict[str, Any]

BEARER_SCHEME = "bearerAuth"
#: Every word shared.reprocess.stage_of answers.
REPROCESS_STAGES = ("live", "ended", "reprocess_pending", "reprocessing", "reprocessed", "reprocess_failed")
API_KEY_SCHEME = "apiKeyHeader"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(type_name: str, **extra: Any) -> Schema:
    return {"type": [type_name, "null"], **extra}


def json_body(schema: Schema) -> dict[str, Schema]:
    return {"application/json": {"schema": schema}}


RETRY_AFTER = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
JOB_ID_HEADER = {"X-OddASR-Job-Id": {"$ref": "#/components/headers/JobId"}}


def error(description: str, *, retry_after: bool = False, with_job: bool = False) -> Schema:
    """An error answer: always `{"error": "..."}` JSON (with the job's id where one exists)."""
    answer: Schema = {"description": description, "content": json_body(ref("JobError" if with_job else "Error"))}
    if retry_after:
        answer["headers"] = RETRY_AFTER
    return answer


_ISO_TIME = nullable("string", format="date-time")

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string", "description": "What went wrong, in words a person can act on."},
                       "job_id": {"type": "string", "description": "The job concerned, where there is one."}},
    },
    "OpenAIError": {
        "type": "object", "required": ["error"],
        "description": "OpenAI's error shape, on the OpenAI-compatible routes (OpenAI's SDKs read it).",
        "properties": {
            "error": {"type": "object", "required": ["message", "type", "param", "code"], "properties": {
                "message": {"type": "string", "description": "What went wrong, in words a person can act on."},
                "type": {"type": "string", "description": "invalid_request_error, rate_limit_error, ..."},
                "param": nullable("string", description="The form field at fault, where one is."),
                "code": nullable("string")}},
            "job_id": {"type": "string", "description": "The job concerned, where there is one."}},
    },
    "JobError": {
        "type": "object", "required": ["error", "job_id"],
        "description": "An error about a job that exists: poll or inspect it with its id.",
        "properties": {"error": {"type": "string"}, "job_id": {"type": "string"}},
    },
    "JobOptions": {
        "type": "object",
        "properties": {
            "language": nullable("string"), "hotwords": {"type": "array", "items": {"type": "string"}},
            "diarize": {"type": "boolean"}, "output_format": {"type": "string", "enum": sorted(RENDERERS)},
            "word_timestamps": {"type": "boolean"},
            "min_speakers": nullable("integer"), "max_speakers": nullable("integer"),
            "identify_speakers": {"type": "boolean"},
            "use_itn": nullable("boolean"), "hotword_set": nullable("string"),
            "hotword_set_version": nullable("string"),
            "hotword_weights": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
    "TranscriptResult": {
        "type": "object", "required": ["text", "segments"],
        "properties": {
            "text": {"type": "string"}, "language": nullable("string"),
            "segments": {"type": "array", "items": {
                "type": "object", "required": ["start", "end", "text"],
                "properties": {"start": {"type": "number"}, "end": {"type": "number"}, "text": {"type": "string"},
                               "speaker": nullable("integer"),
                               "speaker_name": nullable("string", description="identify_speakers: the enrolled"
                                                        " name, null below the match threshold."),
                               "speaker_similarity": nullable("number", description="identify_speakers: cosine"
                                                              " similarity to the best enrolled voiceprint.")},
            }},
            "hotword_hits": {"type": "array", "description": "Where the job's hotwords turned up: found once, when"
                             " the job ended (a live session still running: its sentences so far).", "items": {
                "type": "object", "required": ["word", "count", "times"],
                "properties": {"word": {"type": "string"}, "count": {"type": "integer", "minimum": 1},
                               "times": {"type": "array", "items": {"type": "object", "properties": {
                                   "start": {"type": "number"}, "end": {"type": "number"}}}}}}},
        },
    },
    "Job": {
        "type": "object",
        "required": ["id", "status", "mode", "queue", "options", "progress", "attempts", "created_at", "links"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in JobStatus]},
            "mode": {"type": "string", "enum": [*MODES, STREAM_MODE]},
            "queue": {"type": "string"}, "options": ref("JobOptions"),
            "filename": nullable("string"), "audio_size_bytes": nullable("integer"),
            "audio_duration_s": nullable("number"), "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "attempts": {"type": "integer", "minimum": 0}, "engine": nullable("string"),
            "worker": nullable("string"), "processing_s": nullable("number"), "error": nullable("string"),
            "created_at": {"type": "string", "format": "date-time"}, "started_at": _ISO_TIME,
            "finished_at": _ISO_TIME, "data_expired_at": _ISO_TIME, "callback_url": nullable("string"),
            "api_key_id": nullable("string", description="The key that created the job; null with auth off."),
            "queue_position": nullable("integer", minimum=0, description="While queued: jobs ahead of it (0: next)."),
            "estimated_start_s": nullable("number", description="While queued: seconds until it should start."),
            "estimated_finish_s": nullable("number", description="While queued or running: seconds until it"
                                                                 " should finish."),
            "links": {"type": "object", "required": ["self", "transcript", "webhooks"], "properties": {
                "self": {"type": "string"}, "transcript": {"type": "string"}, "webhooks": {"type": "string"}}},
            "result": ref("TranscriptResult"),
            "waiting_for": nullable("string", description="While running: what the job waits for, in words (the"
                                                          " first diarize job of a worker loads the speaker model)."),
            "stage": {"type": "string", "enum": list(REPROCESS_STAGES),
                      "description": "Only for a live session that asked for reprocessing: where it stands."},
            "reprocessed": ref("Reprocessing"),
        },
    },
    "Reprocessing": {
        "type": "object", "required": ["mode", "job_id", "status", "links"],
        "description": "The file job made from a live session's recording, with its transcript once it has one.",
        "properties": {"mode": {"type": "string", "enum": [m for m in reprocess.MODES if m != reprocess.NONE]},
                       "job_id": {"type": "string"}, "status": nullable("string"), "error": nullable("string"),
                       "links": {"type": "object"}, "result": ref("TranscriptResult")},
    },
    "JobList": {
        "type": "object", "required": ["jobs", "total", "limit", "offset", "next"],
        "properties": {"jobs": {"type": "array", "items": ref("Job")}, "total": {"type": "integer", "minimum": 0},
                       "limit": {"type": "integer"}, "offset": {"type": "integer"},
                       "next": nullable("string", description="The next page's URL; null on the last page.")},
    },
    "Transcript": {
        "type": "object", "required": ["text"],
        "description": "The stored transcript, whole (`format=json`).",
        "properties": {
            "text": {"type": "string"}, "language": nullable("string"), "duration_s": {"type": "number"},
            "engine": {"type": "string"}, "model": {"type": "string"},
            "segments": {"type": "array", "items": {"type": "object", "properties": {
                "start_s": {"type": "number"}, "end_s": {"type": "number"}, "text": {"type": "string"},
                "speaker": nullable("integer"), "words": {"type": "array", "items": {"type": "object"}}}}},
        },
    },
    "WebhookDelivery": {
        "type": "object", "required": ["id", "event_type", "url", "state", "attempts"],
        "properties": {"id": {"type": "string", "description": "The `webhook-id` header of every attempt."},
                       "event_type": {"type": "string"}, "url": {"type": "string"},
                       "state": {"type": "string", "enum": [s.value for s in DeliveryState]},
                       "attempts": {"type": "array", "items": {"type": "object"}},
                       "next_attempt_at": _ISO_TIME, "created_at": _ISO_TIME},
    },
    "WebhookDeliveries": {
        "type": "object", "required": ["job_id", "callback_url", "deliveries"],
        "properties": {"job_id": {"type": "string"}, "callback_url": nullable("string"),
                       "deliveries": {"type": "array", "items": ref("WebhookDelivery")}},
    },
    "KeyLimits": {
        "type": "object",
        "properties": {name: nullable("integer", minimum=0, maximum=MAX_LIMIT_VALUE) for name in LIMIT_FIELDS},
    },
    "ApiKey": {
        "type": "object", "required": ["id", "name", "admin", "limits", "created_at"],
        "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "admin": {"type": "boolean"},
                       "limits": ref("KeyLimits"), "created_at": _ISO_TIME, "last_used_at": _ISO_TIME,
                       "revoked_at": _ISO_TIME},
    },
    "ApiKeyCreated": {
        "allOf": [ref("ApiKey"), {"type": "object", "required": ["key"], "properties": {"key": {
            "type": "string", "description": "The key itself (`oddasr_sk_...`), shown this once only."}}}],
    },
    "ApiKeyList": {"type": "object", "required": ["keys"],
                   "properties": {"keys": {"type": "array", "items": ref("ApiKey")}}},
    "HotwordSetSummary": {
        "type": "object", "required": ["name", "version", "count"],
        "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                       "count": {"type": "integer", "minimum": 0}, "created_at": _ISO_TIME, "updated_at": _ISO_TIME,
                       "read_only": {"type": "boolean", "description": "The server's default set (its hotword file)."},
                       "source": {"type": "string"}},
    },
    "HotwordSet": {
        "allOf": [ref("HotwordSetSummary"), {"type": "object", "required": ["words"], "properties": {"words": {
            "type": "array", "items": ref("Hotword")}}}],
    },
    "HotwordSetList": {
        "type": "object", "required": ["sets", "default"],
        "properties": {"sets": {"type": "array", "items": ref("HotwordSetSummary")},
                       "default": {"anyOf": [ref("HotwordSetSummary"), {"type": "null"}]}},
    },
    "Text": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
    "VerboseTranscription": {
        "type": "object", "required": ["task", "language", "duration", "text", "segments"],
        "properties": {"task": {"type": "string"}, "language": {"type": "string"}, "duration": {"type": "number"},
                       "text": {"type": "string"}, "segments": {"type": "array", "items": {"type": "object"}},
                       "words": {"type": "array", "items": {"type": "object", "properties": {
                           "word": {"type": "string"}, "start": {"type": "number"}, "end": {"type": "number"}}}}},
    },
    "ModelList": {
        "type": "object", "required": ["object", "data"],
        "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {
            "type": "object", "required": ["id", "object"],
            "properties": {"id": {"type": "string"}, "object": {"const": "model"}, "owned_by": {"type": "string"}}}}},
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
    "Readiness": {
        "type": "object", "required": ["ready", "checks", "waiting_for", "queues"],
        "properties": {"ready": {"type": "boolean"},
                       "checks": {"type": "object", "additionalProperties": {"type": "string"}},
                       "waiting_for": {"type": "object", "additionalProperties": {"type": "string"}},
                       "queues": {"type": "object"}, "file_queue": {"type": "string"},
                       "file_queue_served": {"type": "boolean"}, "sentence_queue_served": {"type": "boolean"},
                       "stream_workers": {"type": "object"}},
    },
    "QueueList": {
        "type": "object", "required": ["queues"], "description": "Per queue: backlog, workers and the wait it implies.",
        "properties": {"queues": {"type": "object", "additionalProperties": ref("QueueStatus")}},
    },
    "QueueStatus": {
        "type": "object",
        "required": ["depth", "queued_audio_s", "running", "workers", "processes", "real_time_factor", "samples",
                     "drain_jobs_per_s", "drain_audio_s_per_s", "estimated_wait_s", "backlog_work_s",
                     "max_backlog_jobs", "max_backlog_work_s"],
        "description": "Figures from the last finished jobs of the queue are null until a job has measured them.",
        "properties": {
            "depth": {"type": "integer", "minimum": 0, "description": "Jobs queued."},
            "queued_audio_s": {"type": "number", "minimum": 0},
            "running": {"type": "integer", "minimum": 0},
            "workers": {"type": "integer", "minimum": 0, "description": "Worker nodes alive on the queue."},
            "processes": {"type": "integer", "minimum": 0, "description": "Their processes: jobs run at once."},
            "real_time_factor": nullable("number", minimum=0, description="Processing s per audio s, measured."),
            "job_overhead_s": nullable("number", minimum=0,
                                       description="Seconds each job costs whatever its length, measured."),
            "samples": {"type": "integer", "minimum": 0, "description": "Finished jobs the figures come from."},
            "drain_jobs_per_s": nullable("number", minimum=0),
            "drain_audio_s_per_s": nullable("number", minimum=0),
            "estimated_wait_s": nullable("number", minimum=0, description="Until a job sent now would start."),
            "backlog_work_s": nullable("number", minimum=0, description="Processing s queued (RTF x audio)."),
            "max_backlog_jobs": {"type": "integer", "minimum": 0, "description": "0: no limit."},
            "max_backlog_work_s": {"type": "number", "minimum": 0, "description": "0: no limit."},
        },
    },
    **component_schemas(NewApiKey, HotwordSetBody),  # the request bodies, from the models the routes validate with
}

HEADERS: dict[str, Schema] = {
    "RetryAfter": {"description": "Seconds to wait before trying again.",
                   "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "JobId": {"description": "The id of the job that did the work: GET /v1/jobs/{id} shows its timings.",
              "schema": {"type": "string"}},
    "Location": {"description": "The new job's URL, to poll.", "schema": {"type": "string"}},
}

SECURITY_SCHEMES: dict[str, Schema] = {
    BEARER_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "oddasr_sk_...",
                    "description": "`Authorization: Bearer <key>`, what the OpenAI SDKs send."},
    API_KEY_SCHEME: {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "The same key in an `X-API-Key` header."},
}
