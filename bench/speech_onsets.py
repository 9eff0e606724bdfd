"""Where speech starts and stops in a recording: a simple energy VAD for the benchmarks.

The audio is cut into 10 ms frames and each frame's energy (dBFS) is compared with one
threshold for the whole recording, set from the recording itself: 15 dB above its noise floor
(the 10th percentile of the frame levels) but no lower than 30 dB under its loud frames (the
99th percentile), so that digital silence between synthetic sentences and the room noise of a
real recording both work. A frame above the threshold counts as speech only when at least 3
of the 5 frames from it on are above it too, so that a lone spike of noise starts nothing.

A speech segment starts at the first speech frame after at least 300 ms without one (the
start of the recording counts as silence), and ends at the last speech frame before the next
such 300 ms pause. Segments with less than 100 ms of speech
frames (clicks, breaths) are dropped. The onsets are what a listener would call
"the speaker started a new sentence (or phrase) here"; the benchmarks time each one's first
text from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_S = 0.01
MIN_PAUSE_S = 0.3
MIN_SPEECH_S = 0.1
FLOOR_MARGIN_DB = 15.0
BELOW_LOUD_DB = 30.0


@dataclass(frozen=True)
class Segment:
    """One run of speech: `onset_s` to `end_s`, seconds from the start of the recording."""

    onset_s: float
    end_s: float


def frame_levels_db(samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Energy of each whole 10 ms frame in dBFS (int16 or float samples, mono)."""
    audio = samples.astype(np.float64)
    if samples.dtype == np.int16:
        audio /= 32768.0
    size = int(round(sample_rate_hz * FRAME_S))
    frames = audio[: len(audio) // size * size].reshape(-1, size)
    return 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)


def threshold_db(levels_db: np.ndarray) -> float:
    """The level above which a frame counts as speech (see the module docstring)."""
    if len(levels_db) == 0:
        return 0.0
    floor_db, loud_db = np.percentile(levels_db, [10, 99])
    return float(max(floor_db + FLOOR_MARGIN_DB, loud_db - BELOW_LOUD_DB))


def speech_segments(samples: np.ndarray, sample_rate_hz: int = 16000,
                    min_pause_s: float = MIN_PAUSE_S) -> list[Segment]:
    """The speech segments of a mono recording, in order."""
    levels = frame_levels_db(samples, sample_rate_hz)
    loud = levels > threshold_db(levels)
    # Debounce: a loud frame is speech when 3 of the 5 frames from it on are loud.
    ahead = np.convolve(loud.astype(np.int32), np.ones(5, dtype=np.int32), mode="full")[4:]
    voiced = loud & (ahead >= 3)
    pause_frames = int(round(min_pause_s / FRAME_S))
    min_voiced = int(round(MIN_SPEECH_S / FRAME_S))
    segments: list[Segment] = []
    onset = last_voiced = -1
    voiced_count = 0
    quiet = pause_frames  # the recording starts in "silence"

    def close() -> None:
        if onset >= 0 and voiced_count >= min_voiced:
            segments.append(Segment(round(onset * FRAME_S, 3), round((last_voiced + 1) * FRAME_S, 3)))

    for index, is_voiced in enumerate(voiced):
        if not is_voiced:
            quiet += 1
            continue
        if quiet >= pause_frames:
            close()
            onset, voiced_count = index, 0
        voiced_count += 1
        last_voiced = index
        quiet = 0
    close()
    return segments


def onsets(samples: np.ndarray, sample_rate_hz: int = 16000) -> list[float]:
    """Seconds from the start of the recording at which each speech segment starts."""
    return [segment.onset_s for segment in speech_segments(samples, sample_rate_hz)]
