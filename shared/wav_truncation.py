"""A WAV file cut short: its header announces more audio than the file holds.

libsndfile reads such a file without a word (it logs "file has been truncated" and returns
what is there), so a recording whose upload or writer was cut off was transcribed as if it
were whole. The RIFF chunks say how long the `data` chunk should be; the file's size says how
much of it arrived.
"""

from __future__ import annotations

import struct
from pathlib import Path

#: Sizes a writer puts in a header while it does not know the length yet (streaming
#: recorders, RF64's placeholder): not a truncation.
UNKNOWN_SIZES = frozenset({0, 0xFFFFFFFF})
#: RIFF chunks are read up to this far into the file (`fmt ` and `data` come first in practice).
_MAX_HEADER_SCAN_BYTES = 1 << 20


def wav_truncation(path: Path) -> tuple[int, int] | None:
    """(announced, present) bytes of the `data` chunk when the file holds less than its header
    announces; None for a whole WAV, a WAV of unknown length, or anything that is not a WAV."""
    with path.open("rb") as wav:
        head = wav.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        file_bytes = path.stat().st_size
        offset = 12
        while offset + 8 <= min(file_bytes, _MAX_HEADER_SCAN_BYTES):
            wav.seek(offset)
            chunk_id, size = struct.unpack("<4sI", wav.read(8))
            if chunk_id == b"data":
                if size in UNKNOWN_SIZES:
                    return None
                present = file_bytes - (offset + 8)
                return (size, present) if present < size else None
            offset += 8 + size + (size & 1)  # chunks are word-aligned
    return None


def truncation_message(path: Path, bytes_per_s: float) -> str | None:
    """A 422's words for a truncated WAV, or None."""
    cut = wav_truncation(path)
    if cut is None:
        return None
    announced, present = cut
    return (f"the WAV file is truncated: its header announces {announced / bytes_per_s:.1f} s of audio but it "
            f"holds {present / bytes_per_s:.1f} s (the upload or the recording was cut off); send the whole file")
