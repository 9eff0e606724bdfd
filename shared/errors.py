"""The one error tree of the project.

Code raises these where the problem is found; the boundaries translate them: the API into an
HTTP status with `{"error": message}`, the worker into a failed job or a task retry. Each
class carries the HTTP status a client should see, so that translation is one lookup.
"""

from __future__ import annotations


class OddAsrError(Exception):
    """Base of every error this project raises on purpose."""

    http_status: int = 500
    #: True when trying again later may succeed (the worker retries these).
    transient: bool = False

    def __init__(self, message: str, *, retry_after_s: float | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: When to try again, for 429 and 503 answers (sent as the `Retry-After` header).
        self.retry_after_s = retry_after_s
        #: The request field at fault, where one is (OpenAI's error shape names it as `param`).
        self.param = param


class BadRequestError(OddAsrError):
    """The request itself is wrong: a missing field, an unknown option."""

    http_status = 400


class NotFoundError(OddAsrError):
    http_status = 404


class GoneError(OddAsrError):
    """The thing existed but was deleted (a canceled job's transcript)."""

    http_status = 410


class ConflictError(OddAsrError):
    """The request is valid but not in the current state (a transcript of an unfinished job)."""

    http_status = 409


class RequestTimeoutError(OddAsrError):
    """The client sent its request body too slowly (or stopped sending it)."""

    http_status = 408


class TooManyRequestsError(OddAsrError):
    """A per-client limit was reached; the client may try again shortly."""

    http_status = 429


class PayloadTooLargeError(OddAsrError):
    http_status = 413


class UnsupportedMediaError(OddAsrError):
    """The bytes are not audio any decoder here knows."""

    http_status = 415


class UnprocessableAudioError(OddAsrError):
    """The bytes are audio, but unusable: corrupt, silent container, too long."""

    http_status = 422


class AudioTooLongError(UnprocessableAudioError):
    """The audio passed a duration limit; decoding (or measuring) stopped there.

    `measured_s`: how far it got when it stopped (what a worker decoded, and charges), not the
    file's whole length, which nobody needs to learn."""

    def __init__(self, message: str, *, measured_s: float, limit_s: float) -> None:
        super().__init__(message)
        self.measured_s = measured_s
        self.limit_s = limit_s


class NotSupportedError(OddAsrError):
    """A valid option that the configured engine cannot honour (it is never silently ignored)."""

    http_status = 422


class UnauthorizedError(OddAsrError):
    """No API key, or one this server does not know (or revoked)."""

    http_status = 401


class ForbiddenError(OddAsrError):
    """A known key without the right for this request (a non-admin key on an admin route)."""

    http_status = 403


class ServiceUnavailableError(OddAsrError):
    """A dependency (Redis, database, storage) is down, or a queue is full; the client may retry."""

    http_status = 503
    transient = True


class StorageError(OddAsrError):
    http_status = 503
    transient = True


class EngineError(OddAsrError):
    """The engine failed on audio that passed validation: a bug or a resource problem."""

    http_status = 500


class InvalidTransitionError(OddAsrError):
    """A job status change that the transition table does not allow."""

    http_status = 409
