"""Where speech starts and ends in a file, to the frame: what subtitle cues are timed by.

fsmn-vad finds speech reliably but reports it padded: its start-point rule looks back 200 ms
(`lookback_time_start_point`) and its end-point rule ahead 100 ms, so its spans start about
0.25 s before the first sound and end about 0.2 s after the last (measured on generated
dialogues, see bench/subtitle_timing.py). Whisper's word times (cross-attention alignment) miss
onsets by -0.5 to +0.3 s. So the VAD says where speech is, and the frame energies inside the
VAD's padding say where, in that padding, the sound itself begins and ends: the first (last)
frame that is well above the noise floor with most of its neighbours, so a click or a breath at
the edge does not count. The search only ever narrows a span, by at most its padding and a
little more, so where no frame stands out it keeps the VAD's span. Measured on generated
dialogues (clean, and with white noise 20 and 10 dB under the speech) and checked against an
independent energy onset detector on two human recordings (bench/subtitle_timing.py).
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
#: ... and this far above the file's quiet frames (the noise floor), or half-way from the
#: floor to the loud frames where they are closer (noisy recordings), but never less than
#: MIN_ABOVE_FLOOR_DB.
ABOVE_FLOOR_DB = 15.0
MIN_ABOVE_FLOOR_DB = 6.0
#: Sound starts (ends) at a loud frame with at least this many loud frames among the
#: FRAMES_WINDOW from it on (back from it): a click or breath at a span's edge starts nothing.
LOUD_IN_WINDOW = 3
FRAMES_WINDOW = 5
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


def _sound_frames(inside_db: np.ndarray, floor_db: float) -> np.ndarray:
    """Indices of the frames of a span that are sound: loud enough (see the constants), with
    at least LOUD_IN_WINDOW loud frames among the FRAMES_WINDOW from them on or back from them."""
    loud_db = float(np.percentile(inside_db, 95))
    above_floor_db = min(ABOVE_FLOOR_DB, max(MIN_ABOVE_FLOOR_DB, (loud_db - floor_db) / 2))
    is_loud = inside_db >= max(floor_db + above_floor_db, loud_db - BELOW_PEAK_DB)
    counts = np.convolve(is_loud, np.ones(FRAMES_WINDOW, dtype=int), mode="full")
    loud_from, loud_until = counts[FRAMES_WINDOW - 1:], counts[:inside_db.size]
    return np.nonzero(is_loud & ((loud_from >= LOUD_IN_WINDOW) | (loud_until >= LOUD_IN_WINDOW)))[0]


def tighten_span(levels_db: np.ndarray, floor_db: float, start_ms: int, end_ms: int,
                 pause_ms: int = SUBTITLE_PAUSE_MS) -> list[Span]:
    """The VAD span `start_ms..end_ms` narrowed to where its frames are sound, and cut where
    they are silent for `pause_ms` or more (fsmn-vad's idea of silence is speech probability,
    which room noise and reverberation keep up through some pauses a listener hears), in seconds."""
    whole = [(start_ms / 1000, end_ms / 1000)]
    first = start_ms // FRAME_MS
    last = min(levels_db.size, -(-end_ms // FRAME_MS))
    if last - first <= 0:
        return whole
    inside = levels_db[first:last]
    sound = _sound_frames(inside, floor_db)
    if sound.size == 0:
        return whole
    onset_frame = min(int(sound[0]), ONSET_SEARCH_MS // FRAME_MS)
    offset_frame = max(int(sound[-1]) + 1, inside.size - OFFSET_SEARCH_MS // FRAME_MS)
    if offset_frame <= onset_frame:
        return whole
    pause_frames = pause_ms // FRAME_MS
    cuts = [index for index in np.nonzero(np.diff(sound) - 1 >= pause_frames)[0]
            if onset_frame < sound[index] and sound[index + 1] < offset_frame]
    starts = [onset_frame, *(int(sound[index + 1]) for index in cuts)]
    ends = [*(int(sound[index]) + 1 for index in cuts), offset_frame]
    return [((first + a) * FRAME_MS / 1000, min(end_ms, (first + b) * FRAME_MS) / 1000)
            for a, b in zip(starts, ends, strict=True)]


def speech_spans_s(vad: FsmnVadLite, audio: np.ndarray, pause_ms: int = SUBTITLE_PAUSE_MS) -> list[Span]:
    """Speech spans in seconds, split at every pause of `pause_ms` or more, tightened to the sound."""
    spans_ms = vad.segments_ms(audio, max_end_silence_ms=min(pause_ms, vad.max_end_silence_ms))
    if not spans_ms:
        return []
    levels_db = frame_levels_db(audio)
    floor_db = float(np.percentile(levels_db, 10)) if levels_db.size else _SILENCE_DB
    return [span for start, end in spans_ms for span in tighten_span(levels_db, floor_db, start, end, pause_ms)]
