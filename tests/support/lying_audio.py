"""Audio files whose container lies about their length, built with PyAV (no ffmpeg binary).

A real Opus-in-WebM file is encoded, then its Matroska Segment Duration element (EBML id
0x4489, an 8-byte float in TimecodeScale units: milliseconds by default) is patched to claim
a length of our choosing. Every packet stays intact, so FFmpeg decodes the whole real length.
"""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np

OPUS_RATE_HZ = 48000
#: EBML id of Segment/Info/Duration followed by its size byte (a float of 8 bytes).
_SEGMENT_DURATION_ELEMENT = b"\x44\x89\x88"


def write_webm_opus(path: Path, seconds: float, frequency_hz: float = 440.0) -> Path:
    """A real `seconds`-long mono Opus WebM of a quiet tone."""
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=OPUS_RATE_HZ)
        stream.layout = "mono"
        total = int(seconds * OPUS_RATE_HZ)
        step = OPUS_RATE_HZ  # one second per frame handed to the encoder
        for start in range(0, total, step):
            t = np.arange(start, min(start + step, total)) / OPUS_RATE_HZ
            samples = (0.2 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            frame.sample_rate = OPUS_RATE_HZ
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def claim_duration(path: Path, claimed_s: float) -> Path:
    """Patch the file's Segment Duration to say `claimed_s` (in place)."""
    data = bytearray(path.read_bytes())
    at = data.find(_SEGMENT_DURATION_ELEMENT)
    if at < 0:
        raise ValueError(f"{path} has no 8-byte Segment Duration element to patch")
    start = at + len(_SEGMENT_DURATION_ELEMENT)
    data[start:start + 8] = struct.pack(">d", claimed_s * 1000.0)
    path.write_bytes(bytes(data))
    return path


def lying_webm(path: Path, real_s: float = 100.0, claimed_s: float = 1.0) -> Path:
    """A `real_s` Opus WebM whose header says it lasts `claimed_s`."""
    return claim_duration(write_webm_opus(path, real_s), claimed_s)
