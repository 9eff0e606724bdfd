"""Client audio frames -> whole PCM s16le samples for the relay.

OddASR's test client sends a WAV file as it is, so its first frame starts with a RIFF
header; browsers and recorders cut frames anywhere, so a frame may end in half a sample.
Both are handled here, once, for every protocol.
"""

from __future__ import annotations

import struct

BYTES_PER_SAMPLE = 2
#: A RIFF header longer than this is not a header we strip (the rest is treated as audio).
MAX_HEADER_BYTES = 4096


def wav_payload_offset(frame: bytes) -> int:
    """Where the PCM of the `data` chunk starts when `frame` begins with a WAV header, else 0."""
    if len(frame) < 12 or frame[:4] != b"RIFF" or frame[8:12] != b"WAVE":
        return 0
    position = 12
    while position + 8 <= min(len(frame), MAX_HEADER_BYTES):
        chunk_id = frame[position:position + 4]
        (size,) = struct.unpack("<I", frame[position + 4:position + 8])
        if chunk_id == b"data":
            return position + 8
        position += 8 + size + (size & 1)
    return 0


class AudioFramer:
    """Turns a session's binary frames into runs of whole samples."""

    def __init__(self) -> None:
        self._first = True
        self._carry = b""

    def push(self, frame: bytes) -> bytes:
        if self._first:
            self._first = False
            frame = frame[wav_payload_offset(frame):]
        data = self._carry + frame
        whole = len(data) - len(data) % BYTES_PER_SAMPLE
        self._carry = data[whole:]
        return data[:whole]
