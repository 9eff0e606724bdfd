"""Receive an uploaded audio file without ever holding it in memory.

Werkzeug streams the multipart body into a temporary file that we choose (on the data
disk, not in RAM), while `MAX_CONTENT_LENGTH` stops a too-large body as it streams. The
temporary file is probed (so non-audio is refused before anything is stored or queued) and
then streamed into storage.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flask import Request, current_app, request
from werkzeug.datastructures import FileStorage

from shared.audio import AudioInfo, probe
from shared.errors import BadRequestError, PayloadTooLargeError, UnprocessableAudioError

logger = logging.getLogger(__name__)

#: Room for the multipart headers and the other form fields beside the audio part.
MULTIPART_OVERHEAD_BYTES = 1024 * 1024
#: Every temporary upload file's name starts with this.
UPLOAD_PREFIX = "upload-"


class SpoolToDiskRequest(Request):
    """A request whose uploaded files go straight to a temp file in the configured dir."""

    def _get_file_stream(
        self, total_content_length: int | None, content_type: str | None, filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        upload_dir = current_app.config["ODDASR_UPLOAD_TMP_DIR"]
        return tempfile.NamedTemporaryFile(dir=upload_dir, prefix=UPLOAD_PREFIX, delete=True)  # noqa: SIM115


@dataclass
class ReceivedAudio:
    """An upload that passed validation, still in its temporary file."""

    file: FileStorage
    path: Path
    filename: str
    size_bytes: int
    info: AudioInfo


def _file_path(storage: FileStorage) -> Path:
    stream: Any = storage.stream
    name = getattr(stream, "name", None)
    if isinstance(name, str) and os.path.exists(name):
        stream.flush()
        return Path(name)
    # Small parts may arrive in memory (a BytesIO): copy to disk so the probe can read them.
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115
        dir=current_app.config["ODDASR_UPLOAD_TMP_DIR"], prefix=UPLOAD_PREFIX, delete=True
    )
    stream.seek(0)
    while chunk := stream.read(1024 * 1024):
        tmp.write(chunk)
    tmp.flush()
    storage.stream = tmp
    return Path(tmp.name)


def receive_audio(field: str, *, max_upload_bytes: int, max_duration_s: float) -> ReceivedAudio:
    """Validate the uploaded file in form field `field`; raise a 4xx error otherwise."""
    storage = request.files.get(field)
    if storage is None:
        raise BadRequestError(f"missing the audio file: send it as multipart form field '{field}'", param=field)
    return check_audio_part(storage, field, max_upload_bytes=max_upload_bytes, max_duration_s=max_duration_s)


def check_audio_part(storage: FileStorage, field: str, *, max_upload_bytes: int,
                     max_duration_s: float) -> ReceivedAudio:
    """Validate one uploaded part (of several with the same field name, e.g. enrollment clips)."""
    path = _file_path(storage)
    size_bytes = path.stat().st_size
    if size_bytes == 0:
        raise BadRequestError(f"the uploaded file '{storage.filename or field}' is empty")
    if size_bytes > max_upload_bytes:
        raise PayloadTooLargeError(f"the upload is larger than the limit of {max_upload_bytes} bytes")
    info = probe(path, max_duration_s=max_duration_s)
    if info.duration_s > max_duration_s:
        raise UnprocessableAudioError(
            f"the audio lasts {info.duration_s:.1f} s, longer than the limit of {max_duration_s:.0f} s"
            " for this mode"
        )
    return ReceivedAudio(
        file=storage, path=path, filename=(storage.filename or "")[:255], size_bytes=size_bytes, info=info
    )


def sweep_stale_uploads(upload_dir: str | os.PathLike[str], older_than_s: float) -> int:
    """Delete temporary upload files not written for `older_than_s`; return how many.

    A request deletes its temporary file when it ends, but a killed API process (SIGKILL, a
    crash, an OOM kill) ends no request, so its files stay for good. A live upload writes as it
    streams and a live request holds its file only while it waits for its job, so a file
    untouched for longer than any request lives is an orphan: keep `older_than_s` above the
    synchronous wait (`sync_wait_timeout_s`). Safe to run from several processes at once.
    """
    cutoff_s = time.time() - older_than_s
    removed = 0
    try:
        entries = list(os.scandir(upload_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.startswith(UPLOAD_PREFIX):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_mtime >= cutoff_s:
                continue
            os.unlink(entry.path)
        except FileNotFoundError:
            continue  # another process swept it, or its request just ended
        removed += 1
    if removed:
        logger.info("removed %d stale upload temp file(s) from %s", removed, upload_dir)
    return removed
