"""The door of a live session: everything decided before its first audio frame is relayed.

Who the caller is and whether its key may open a session (the same limits as any job), whether
the start message asks for something this server does (the same checks as every HTTP
endpoint), a stream worker to hold it, and the job row that records it: in that order, so a
refused session never holds a worker, and a worker is never held without its job. A client
reconnecting to its session is let in to its own running session only. Every refusal is a
`Refused` with a protocol error kind and a message a person can act on.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass

import redis
from sqlalchemy.exc import SQLAlchemyError

from api.auth import MISSING_KEY_MESSAGE, authenticate_token
from api.deps import ApiDeps
from api.hotword_sets import resolve_hotwords
from api.options import check_hotwords, check_language, check_supported, parse_callback_url, parse_language
from api.principal import Principal
from api.streaming import jobs as stream_jobs
from api.streaming import vocabulary as v
from api.streaming.relay import find_session, wait_for_slot
from shared import reprocess
from shared import stream_messages as sm
from shared.db.repository import STREAM_MODE
from shared.engines_catalog import live_language_refusal
from shared.errors import BadRequestError, NotSupportedError, OddAsrError, UnauthorizedError
from shared.schemas import JobOptions
from shared.stream_slots import Claim, release_slot

logger = logging.getLogger(__name__)

#: A session request not taken up by its worker this long after the claim is dropped by it.
SESSION_REQUEST_TTL_S = 3.0
DATABASE_UNAVAILABLE_MESSAGE = "the job database is unavailable; try again shortly"


class Refused(Exception):
    """The session is not let in: `kind` (a protocol error kind) says why to the adapter."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class Admitted:
    """A session let in: a worker holds it and its job row exists."""

    session_id: str
    claim: Claim
    principal: Principal
    sample_rate_hz: int
    #: A new session: what its worker is handed (the options as checked); None when resuming.
    request: sm.SessionRequest | None = None
    #: A resumed session: the last final sentence its client has (-1: none).
    resume_after_index: int = -1


class LiveAdmission:
    def __init__(self, deps: ApiDeps, principal: Principal | None = None, resume_session_id: str = "") -> None:
        """`principal`: the caller, when the upgrade request carried a key (or auth is off);
        `resume_session_id`: the `session` query parameter of a reconnecting client."""
        self.deps = deps
        self.settings = deps.settings
        self.principal = principal
        self.resume_session_id = resume_session_id

    def admit(self, start: v.StartCommand, protocol: str) -> Admitted:
        """Let the session in, or raise `Refused`."""
        if self.settings.disable_stream:
            raise Refused(v.DISABLED, "live streaming is turned off on this server (disable_stream)")
        resume_id = start.task_id or self.resume_session_id
        principal = self._authenticate(start, resuming=bool(resume_id))
        if resume_id:
            return self._readmit(start, principal, resume_id)
        self._validate(start, principal)
        session_id = uuid.uuid4().hex
        claim = self._claim_worker(session_id)
        self._record(session_id, start, protocol, claim, principal)
        return Admitted(session_id, claim, principal, start.sample_rate_hz,
                        request=self._worker_request(session_id, claim, start, protocol, principal))

    def _authenticate(self, start: v.StartCommand, *, resuming: bool) -> Principal:
        try:
            return self._principal_of(start, resuming=resuming)
        except OddAsrError as exc:
            raise Refused(v.UNAUTHORIZED if exc.http_status == 401 else v.LIMITED, exc.message) from exc
        except SQLAlchemyError as exc:  # the key table is unreachable: say so in the client's protocol
            logger.warning("stream session: the key database is unavailable", exc_info=True)
            raise Refused(v.UNAVAILABLE, DATABASE_UNAVAILABLE_MESSAGE) from exc

    def _principal_of(self, start: v.StartCommand, *, resuming: bool) -> Principal:
        """The caller: known from the upgrade request, or named by the start message's
        `token` (OddASR's clients carry their key there); its limits apply as to any job."""
        principal = self.principal
        if principal is None:
            if not start.token:
                raise UnauthorizedError(MISSING_KEY_MESSAGE + "; a websocket may also send it as the 'api_key'"
                                        " query parameter, the OddASR start message's 'token' or the FunASR"
                                        " config frame's 'api_key'")
            principal = authenticate_token(start.token)
            self.deps.limiter.check_request_rate(principal)
        if not resuming:  # a resumed session is already in flight, and charged as it goes
            self.deps.limiter.check_in_flight(principal)
            self.deps.limiter.check_live_sessions(principal)
            self.deps.limiter.check_audio_left(principal)
        return principal

    def _validate(self, start: v.StartCommand, principal: Principal) -> None:
        """The same checks as every HTTP endpoint, before a worker is held."""
        try:
            start.language = parse_language(start.language)
            check_language(start.language, self.settings)
            start.hotwords = check_hotwords(start.hotwords)
            if start.hotword_set:  # named only: the server's default set never applies to live sessions
                merged = resolve_hotwords(self.deps, principal, start.hotword_set, JobOptions(hotwords=start.hotwords))
                start.hotwords = merged.hotwords
                start.hotword_set, start.hotword_set_version = merged.hotword_set, merged.hotword_set_version
            if refusal := live_language_refusal(self.settings.stream_engine, start.language):
                raise BadRequestError(refusal)
            if start.callback_url:
                start.callback_url = parse_callback_url({"callback_url": start.callback_url}, self.settings)
            if start.reprocess == reprocess.DIARIZE:
                check_supported(JobOptions(diarize=True), self.settings)
        except (BadRequestError, NotSupportedError) as exc:
            raise Refused(v.BAD_REQUEST, exc.message) from exc

    def _claim_worker(self, session_id: str) -> Claim:
        wait_s = self.settings.stream_slot_wait_s
        try:
            claim = wait_for_slot(self.deps.redis, session_id, wait_s)
        except redis.RedisError as exc:
            raise Refused(v.UNAVAILABLE, f"the stream relay (Redis) is unavailable: {exc}") from exc
        if claim is None:
            raise Refused(v.BUSY, f"every stream worker is busy (waited {wait_s:.0f} s); try again in a few seconds")
        return claim

    def _record(self, session_id: str, start: v.StartCommand, protocol: str, claim: Claim,
                principal: Principal) -> None:
        """The session's job row, in the key's live-session place; on failure the worker goes free."""
        try:
            with self.deps.limiter.in_flight_place(principal, live_session=True):
                stream_jobs.create(self.deps, session_id, start, protocol, claim.worker_id, principal.key_id)
        except Exception as exc:
            if isinstance(exc, OddAsrError):
                kind, message = (v.LIMITED if exc.http_status == 429 else v.UNAVAILABLE), exc.message
            else:
                logger.exception("could not record stream session %s", session_id)
                kind, message = v.UNAVAILABLE, DATABASE_UNAVAILABLE_MESSAGE
            with contextlib.suppress(redis.RedisError):
                release_slot(self.deps.redis, claim.worker_id, claim.fence)
            raise Refused(kind, message) from exc

    def _worker_request(self, session_id: str, claim: Claim, start: v.StartCommand,
                        protocol: str, principal: Principal) -> sm.SessionRequest:
        """What the claimed worker is handed; stale (the worker drops it) a few seconds after the
        claim, both times on Redis' clock (the worker's host clock may differ from this one)."""
        return sm.SessionRequest(
            session_id=session_id, job_id=session_id, fence=claim.fence,
            expires_at_s=claim.claimed_at_s + SESSION_REQUEST_TTL_S, sample_rate_hz=start.sample_rate_hz,
            language=start.language,
            hotwords=start.hotwords, want_partials=start.want_partials, protocol=protocol,
            max_session_s=self.settings.stream_max_session_s, reprocess=start.reprocess, mode=start.mode,
            chunk_size=start.chunk_size, encoder_chunk_look_back=start.encoder_chunk_look_back,
            decoder_chunk_look_back=start.decoder_chunk_look_back, speakers=start.speakers,
            speakers_owner=principal.key_id or "",
        )

    def _readmit(self, start: v.StartCommand, principal: Principal, session_id: str) -> Admitted:
        """A client reconnecting to its session: let in only to its own running session, still
        held by a worker; it goes on after the last final it has (its word, or what its last
        connection was sent)."""
        try:
            job = self.deps.jobs.find(session_id, principal.owner_filter) if len(session_id) <= 64 else None
            if job is None or job.mode != STREAM_MODE or job.status != "running":
                raise Refused(*why_not_continue(self.deps, session_id, principal.owner_filter))
        except SQLAlchemyError as exc:
            logger.warning("stream session %s: the job database is unavailable", session_id, exc_info=True)
            raise Refused(v.UNAVAILABLE, DATABASE_UNAVAILABLE_MESSAGE) from exc
        try:
            point = find_session(self.deps.redis, session_id)
        except redis.RedisError as exc:
            raise Refused(v.UNAVAILABLE, f"the stream relay (Redis) is unavailable: {exc}") from exc
        if point is None:
            raise Refused(v.BAD_REQUEST, f"session {session_id} has ended and cannot be continued; start a new one")
        after_index = start.last_final_index if start.last_final_index is not None else point.last_final_sent
        sample_rate_hz = int(job.options.get("sample_rate_hz") or start.sample_rate_hz)
        return Admitted(session_id, point.claim, principal, sample_rate_hz, resume_after_index=after_index)


def why_not_continue(deps: ApiDeps, task_id: str, owner_id: str | None = None) -> tuple[str, str]:
    """The answer to a client that asks to continue session `task_id` that is not running.
    Another key's session is "unknown", in the same words as a missing one."""
    job = deps.jobs.find(task_id, owner_id) if len(task_id) <= 64 else None
    if job is None or job.mode != STREAM_MODE:
        return v.UNKNOWN_TASK, f"unknown task_id {task_id[:64]!r}: leave task_id empty to start a new session"
    return v.BAD_REQUEST, f"session {task_id} has ended and cannot be continued; start a new session"
