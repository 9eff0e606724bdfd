"""Enrolled speakers (voiceprints) of the caller's key: enroll, list, read, delete.

The API runs no model, so enrolling stores the audio parts and asks a worker, by task name,
to embed them with its engine's speaker model; the request then waits a bounded time for
the result (201), or answers 202 with a Location to poll. A key sees only its own speakers:
another key's read as missing (404), the same answer as an unknown id, so ids leak nothing.
"""

from __future__ import annotations

import logging
import time
import uuid

import redis
from flask import Blueprint, jsonify, request, url_for
from kombu.exceptions import KombuError

from api.auth import current_principal
from api.body_limits import upload_body
from api.deps import ApiDeps, deps
from api.hotword_sets import owner_of
from api.request_models.speaker_form import SpeakerForm
from api.response_models import resources as out
from api.routing import choose_queue
from api.uploads import ReceivedAudio, check_audio_part
from shared.db.models import Speaker, SpeakerStatus
from shared.db.speakers import SpeakerRepository
from shared.engines_catalog import file_engine
from shared.errors import (
    BadRequestError,
    ConflictError,
    NotSupportedError,
    OddAsrError,
    ServiceUnavailableError,
    UnprocessableAudioError,
)
from shared.schemas import ENROLL_SPEAKER_TASK_NAME

logger = logging.getLogger(__name__)

blueprint = Blueprint("speakers", __name__)

#: Each enrollment part holds this much of one voice: less says too little about it, more
#: adds little and costs the worker time.
MIN_PART_S = 5.0
MAX_PART_S = 30.0
MAX_PARTS = 10
#: How often a waiting enrollment re-reads its row.
POLL_INTERVAL_S = 0.2


def speakers() -> SpeakerRepository:
    return SpeakerRepository(deps().jobs.session_factory)


def _check_engine_can_embed(d: ApiDeps) -> None:
    """Refuse before storing anything where the workers have no speaker model to embed with."""
    engine = file_engine(d.settings)
    if not engine.supports_diarization(d.settings):
        raise NotSupportedError("enrolling a speaker needs the engine's speaker model, which this server lacks: "
                                + engine.diarize_unavailable_reason())


def _received_parts(d: ApiDeps) -> list[ReceivedAudio]:
    parts = [part for part in request.files.getlist("audio")]
    if not parts:
        raise BadRequestError("missing the audio: send one or more multipart parts named 'audio', each 5 to 30 s"
                              " of the speaker's voice alone")
    if len(parts) > MAX_PARTS:
        raise BadRequestError(f"at most {MAX_PARTS} audio parts per enrollment")
    received = []
    for index, part in enumerate(parts, start=1):
        audio = check_audio_part(part, "audio", max_upload_bytes=d.settings.max_upload_bytes,
                                 max_duration_s=d.settings.max_audio_duration_s)
        duration_s = audio.info.duration_s
        if not MIN_PART_S <= duration_s <= MAX_PART_S:
            label = f"'{audio.filename}'" if audio.filename else f"number {index}"
            raise UnprocessableAudioError(
                f"audio part {label} lasts {duration_s:.1f} s: each enrollment part must hold {MIN_PART_S:g} to"
                f" {MAX_PART_S:g} s of the speaker's voice")
        received.append(audio)
    return received


def _wait_for_enrollment(repository: SpeakerRepository, speaker_id: str, timeout_s: float) -> Speaker:
    """Poll the row (a few reads a second) until the worker finished or time is up."""
    deadline_s = time.monotonic() + timeout_s
    while True:
        row = repository.find(speaker_id)
        if row is None or row.status != SpeakerStatus.ENROLLING or time.monotonic() >= deadline_s:
            return row  # type: ignore[return-value]  # None: deleted meanwhile, the caller says so
        time.sleep(POLL_INTERVAL_S)


def _check_speaker_cap(d: ApiDeps, repository: SpeakerRepository, owner: str) -> None:
    """Refuse (409) before anything is stored once the key holds its limit of speakers."""
    cap = d.settings.max_speakers_per_key
    if cap and (held := repository.count(owner)) >= cap:
        raise ConflictError(f"this key already holds {held} enrolled speakers, its limit (max_speakers_per_key ="
                            f" {cap}): delete one (DELETE /v1/speakers/{{id}}) before enrolling another")


def _store_and_queue(d: ApiDeps, repository: SpeakerRepository, owner: str, name: str, speaker_id: str,
                     parts: list[ReceivedAudio]) -> str:
    """Store the parts, record the speaker, send its task; the queue it went to.

    Whatever fails on the way (storage, database, queue) deletes the parts already stored and
    fails the row if there is one: a failed enrollment leaves no audio behind (what a crash
    leaves, retention's sweep of `speakers/` deletes)."""
    keys: list[str] = []
    created = False
    try:
        for index, audio in enumerate(parts):
            key = f"speakers/{speaker_id}/{index}"
            audio.file.stream.seek(0)
            d.storage.put_file(key, audio.file.stream)
            keys.append(key)
        repository.create(owner, name, keys, sum(a.info.duration_s for a in parts), speaker_id=speaker_id)
        created = True
        queue = choose_queue(d.settings, "file", d.redis)
        d.celery.send_task(ENROLL_SPEAKER_TASK_NAME, args=[speaker_id], queue=queue, task_id=f"speaker-{speaker_id}")
        return queue
    except Exception as exc:
        logger.error("could not enroll speaker %s: %s", speaker_id, exc)
        _undo_enrollment(d, repository, speaker_id, keys, created)
        if isinstance(exc, OddAsrError):
            raise
        if isinstance(exc, (KombuError, OSError, redis.RedisError)):
            raise ServiceUnavailableError("the job queue is unavailable; try again shortly") from exc
        raise ServiceUnavailableError("the speaker database is unavailable; try again shortly") from exc


def _undo_enrollment(d: ApiDeps, repository: SpeakerRepository, speaker_id: str, keys: list[str],
                     created: bool) -> None:
    if created:
        try:
            repository.mark_failed(speaker_id, "the enrollment could not be queued")
        except Exception:  # the database is what failed: the stale-enrollment sweep fails it later
            logger.warning("could not mark speaker %s failed", speaker_id, exc_info=True)
    for key in keys:
        try:
            d.storage.delete(key)
        except Exception:  # storage is what failed: retention's sweep of speakers/ deletes it later
            logger.warning("could not delete enrollment audio %s", key, exc_info=True)


@blueprint.post("/v1/speakers")
@upload_body
def enroll_speaker():  # type: ignore[no-untyped-def]
    d = deps()
    owner = owner_of(current_principal())
    form = SpeakerForm.parse(request.form.to_dict())
    name, wait = form.name, form.wait
    _check_engine_can_embed(d)
    repository = speakers()
    _check_speaker_cap(d, repository, owner)
    parts = _received_parts(d)
    speaker_id = uuid.uuid4().hex
    queue = _store_and_queue(d, repository, owner, name, speaker_id, parts)
    logger.info("speaker %s enrolling on %s (%d part(s), key %s)", speaker_id, queue, len(parts), owner or "-")
    row = _wait_for_enrollment(repository, speaker_id, d.settings.speaker_enroll_wait_s if wait else 0.0)
    if row is None:
        row = repository.get(owner, speaker_id)  # deleted while it enrolled: 404
    response = jsonify(out.Speaker.of(row).public())
    if row.status == SpeakerStatus.READY:
        response.status_code = 201
    elif row.status == SpeakerStatus.FAILED:
        response = jsonify(out.Speaker.of(row, error=f"the speaker could not be enrolled: {row.error}").public())
        response.status_code = 422
    else:
        response.status_code = 202
    response.headers["Location"] = url_for("speakers.get_speaker", speaker_id=speaker_id)
    return response


@blueprint.get("/v1/speakers")
def list_speakers():  # type: ignore[no-untyped-def]
    return jsonify(out.SpeakerList(speakers=[out.Speaker.of(row) for row in speakers().list(
        owner_of(current_principal()))]).public())


@blueprint.get("/v1/speakers/<speaker_id>")
def get_speaker(speaker_id: str):  # type: ignore[no-untyped-def]
    return jsonify(out.Speaker.of(speakers().get(owner_of(current_principal()), speaker_id)).public())


@blueprint.delete("/v1/speakers/<speaker_id>")
def delete_speaker(speaker_id: str):  # type: ignore[no-untyped-def]
    row = speakers().delete(owner_of(current_principal()), speaker_id)
    for key in row.audio_keys or []:  # still enrolling: its parts go too (the worker then finds no row)
        deps().storage.delete(key)
    return jsonify(out.Deleted(deleted=row.id).public())
