"""Audio probing and decoding, used by the API (to refuse bad uploads fast) and the worker.

- probing: `probe()`, an upload's format and measured duration, fast (headers, packets);
- decoding: `decode_16k_mono()`, a whole file as float32 16 kHz mono, and raw PCM from clients;
- refusals: the 415/422 errors both raise, each with a message a person can act on.
This package is imported by the API image, so it never imports torch or an engine.
"""

from shared.audio.decoding import TARGET_SAMPLE_RATE_HZ, decode_16k_mono, pcm16le_to_float32
from shared.audio.probing import AudioInfo, probe
from shared.audio.refusals import DURATION_LIMIT_TOLERANCE_S, MIN_DURATION_S, SUPPORTED_FORMATS

__all__ = [
    "DURATION_LIMIT_TOLERANCE_S",
    "MIN_DURATION_S",
    "SUPPORTED_FORMATS",
    "TARGET_SAMPLE_RATE_HZ",
    "AudioInfo",
    "decode_16k_mono",
    "pcm16le_to_float32",
    "probe",
]
