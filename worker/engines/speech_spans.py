"""Where speech starts and ends in a file, to the frame: what subtitle cues are timed by.

fsmn-vad finds speech reliably but reports it padded: its start-point rule looks back 200 ms
(`lookback_time_start_point`) and its end-point rule ahead 100 ms, so its spans start about
0.25 s before the first sound and end about 0.2 s after the last (measured on generated
dialogues, see bench/subtitle_timing.py). Whisper's word times (cross-attention alignment) miss
onsets by -0.5 to +0.3 s. So the VAD says where speech is, and the frame energies inside the
VAD's padding say where, in that padding, the sound itself begins and ends. The energy search
only ever narrows a span, within its padding, so on noisy audio it falls back to the VAD's span.
"""

from __future__ import annotations

import numpy as np

from worker.engines.base import SAMPLE_RATE_HZ
from worker.engines.fsmn_vad_lite import FsmnVadLite

#: A pause at least this long ends a span, so no subtitle cue runs through it.
SUBTITLE_PAUSE_MS = 500
#: Energy frames: 10 ms, like the VAD's.
FRAME_MS = 10
#: How far inside a VAD span the sound's onset (end) is looked for: the VAD's padding and more.
ONSET_SEARCH_MS = 450
OFFSET_SEARCH_MS = 350
#: A frame is sound when it is this far below the span's loud frames ...
BELOW_PEAK_DB = 35.0
#: ... and this far above the file's quiet frames (the noise floor).
ABOVE_FLOOR_DB = 12.0
_SILENCE_DB = -90.0

Span = tuple[float, float]


def frame_levels_db(audio: np.ndarray) -> np.ndarray:
    """RMS level of each 10 ms frame in dBFS (digital silence reads -90)."""
    frame = SAMPLE_RATE_HZ * FRAME_MS // 1000
    usable = audio.size // frame * frame
    if usable == 0:
        return np.zeros(0, dtype=np.float64)
    frames = audio[:usable].astype(np.float64).reshape(-1, frame)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    return np.maximum(20 * np.log10(np.maximum(rms, 1e-12)), _SILENCE_DB)


def tighten_span(levels_db: np.ndarray, floor_db: float, start_ms: int, end_ms: int) -> Span:
    """The VAD span `start_ms..end_ms` narrowed to where its frames are sound, in seconds."""
    first = start_ms // FRAME_MS
    last = min(levels_db.size, -(-end_ms // FRAME_MS))
    if last - first <= 0:
        return start_ms / 1000, end_ms / 1000
    inside = levels_db[first:last]
    threshold_db = max(floor_db + ABOVE_FLOOR_DB, float(np.percentile(inside, 95)) - BELOW_PEAK_DB)
    loud = np.nonzero(inside >= threshold_db)[0]
    if loud.size == 0:
        return start_ms / 1000, end_ms / 1000
    onset_frame = min(int(loud[0]), ONSET_SEARCH_MS // FRAME_MS)
    offset_frame = max(int(loud[-1]) + 1, inside.size - OFFSET_SEARCH_MS // FRAME_MS)
    if offset_frame <= onset_frame:
        return start_ms / 1000, end_ms / 1000
    return (first + onset_frame) * FRAME_MS / 1000, min(end_ms, (first + offset_frame) * FRAME_MS) / 1000


def speech_spans_s(vad: FsmnVadLite, audio: np.ndarray, pause_ms: int = SUBTITLE_PAUSE_MS) -> list[Span]:
    """Speech spans in seconds, split at every pause of `pause_ms` or more, tightened to the sound."""
    spans_ms = vad.segments_ms(audio, max_end_silence_ms=min(pause_ms, vad.max_end_silence_ms))
    if not spans_ms:
        return []
    levels_db = frame_levels_db(audio)
    floor_db = float(np.percentile(levels_db, 10)) if levels_db.size else _SILENCE_DB
    return [tighten_span(levels_db, floor_db, start, end) for start, end in spans_ms]
