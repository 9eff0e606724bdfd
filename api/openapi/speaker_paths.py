"""Enrolled speakers in the document: a key's voiceprints (api/routes/speakers.py)."""

from __future__ import annotations

from typing import Any

from api.openapi.components import error, json_body, nullable
from api.openapi.operations import operation
from api.openapi.request_schemas import multipart_body
from api.request_models.speaker_form import SpeakerForm
from api.routes.speakers import MAX_PART_S, MAX_PARTS, MIN_PART_S

Schema = dict[str, Any]

TAG = "speakers"

SPEAKER: Schema = {
    "type": "object", "required": ["id", "name", "status", "links"],
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"},
        "status": {"type": "string", "enum": ["enrolling", "ready", "failed"]},
        "error": nullable("string", description="Why the enrollment failed."),
        "embedding_model": nullable("string", description="`resemblyzer-ge2e` or `campplus`: jobs compare only"
                                                          " voiceprints of their engine's model."),
        "audio_duration_s": {"type": "number"},
        "created_at": nullable("string", format="date-time"), "updated_at": nullable("string", format="date-time"),
        "links": {"type": "object", "properties": {"self": {"type": "string"}}},
    },
}

_ID = {"name": "speaker_id", "in": "path", "required": True, "schema": {"type": "string"},
       "description": "The speaker's id, as returned on enrollment."}
_NOT_FOUND = error("No such speaker, or one of another key (the same answer, so ids leak nothing).")
_LOCATION = {"Location": {"schema": {"type": "string"}, "description": "Where to read the speaker."}}


def _speaker_answer(description: str) -> Schema:
    return {"description": description, "content": json_body(SPEAKER), "headers": _LOCATION}


def speaker_paths() -> dict[str, Schema]:
    form = multipart_body(SpeakerForm, {"audio": {
        "type": "array", "minItems": 1, "maxItems": MAX_PARTS,
        "items": {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"},
        "description": f"One or more parts, each {MIN_PART_S:g} to {MAX_PART_S:g} s of this voice alone."}})
    return {
        "/v1/speakers": {
            "get": operation("listSpeakers", TAG, "The key's enrolled speakers", {"200": {
                "description": "The speakers (never their embeddings).", "content": json_body({
                    "type": "object", "required": ["speakers"],
                    "properties": {"speakers": {"type": "array", "items": SPEAKER}}})}}),
            "post": operation(
                "enrollSpeaker", TAG, "Enroll a speaker (a voiceprint) from samples of one voice",
                {"201": _speaker_answer("Enrolled: the voiceprint is ready."),
                 "202": _speaker_answer("Still embedding on a worker: poll the Location."),
                 "400": error("No name, a malformed name, no audio part, or too many parts."),
                 "413": error("An audio part is larger than the upload limit."),
                 "415": error("An audio part is not audio."),
                 "422": error(f"An audio part lasts less than {MIN_PART_S:g} s or more than {MAX_PART_S:g} s, is"
                              " unusable, or the engine has no speaker model (or the worker could not embed it)."),
                 "408": error("The body arrived too slowly, or stalled.")},
                description="A worker embeds each part with its engine's speaker model (Resemblyzer for Whisper, "
                            "cam++ for FunASR), averages them and keeps only the voiceprint: the audio is deleted. "
                            "Jobs with `identify_speakers=true` name diarized speakers after these voiceprints.",
                request_body=form),
        },
        "/v1/speakers/{speaker_id}": {
            "get": operation("getSpeaker", TAG, "An enrolled speaker",
                             {"200": {"description": "The speaker.", "content": json_body(SPEAKER)},
                              "404": _NOT_FOUND}, parameters=[_ID]),
            "delete": operation(
                "deleteSpeaker", TAG, "Delete a speaker and its voiceprint",
                {"200": {"description": "Deleted.", "content": json_body({
                    "type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "string"}}})},
                 "404": _NOT_FOUND}, parameters=[_ID]),
        },
    }
