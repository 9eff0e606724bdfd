"""Short pauses inside what the VAD calls one stretch of speech, found as the audio arrives.

fsmn-vad ends a sentence after `vad_max_end_silence_ms` (800 ms) of silence. Read or fluent
speech pauses for 250-500 ms between phrases, so it runs on as one sentence until the live
engine's length limit cuts it, and then the words after each pause are refreshes of a long
partial (costly to decode, behind its stable words) instead of a new sentence's first words.
The live engine uses this to close a long sentence at such a pause and to open the next where
the speech comes back.

Frame levels as in bench/speech_onsets.py, but causal: 10 ms frames, a frame is loud above a
threshold 15 dB over the noise floor (the 10th percentile of the last `HISTORY_S`) and at
least 30 dB under the loud frames (their 99th percentile), so room noise and digital silence
both work.
"""

from __future__ import annotations

from collections import deque

import numpy as np

FRAME_MS = 10
#: The frame levels the threshold is taken from.
HISTORY_S = 10.0
FLOOR_MARGIN_DB = 15.0
BELOW_LOUD_DB = 30.0
#: Loud frames needed in a row to count as speech coming back (not one click).
ONSET_FRAMES = 3


class PauseFinder:
    """Levels of a stream's recent 10 ms frames, on the stream's sample clock."""

    def __init__(self, sample_rate_hz: int = 16000) -> None:
        self._frame_samples = sample_rate_hz * FRAME_MS // 1000
        self._pending = np.zeros(0, dtype=np.float32)
        self._levels_db: deque[float] = deque(maxlen=int(HISTORY_S * 1000 / FRAME_MS))
        #: Absolute index of the frame after the last one in `_levels_db`.
        self._frames_seen = 0

    def accept(self, samples: np.ndarray) -> None:
        audio = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        whole = audio.size // self._frame_samples * self._frame_samples
        frames = audio[:whole].reshape(-1, self._frame_samples).astype(np.float64)
        self._pending = audio[whole:]
        for power in np.mean(frames * frames, axis=1):
            self._levels_db.append(10.0 * float(np.log10(power + 1e-12)))
        self._frames_seen += frames.shape[0]

    def quiet_since_ms(self) -> int | None:
        """Where the quiet the stream ends in began (ms on the stream clock), or None when its
        last frame is loud."""
        loud = self._loud()
        if loud.size == 0 or loud[-1]:
            return None
        heard = np.flatnonzero(loud)
        first_quiet = heard[-1] + 1 if heard.size else 0
        return (self._frames_seen - loud.size + int(first_quiet)) * FRAME_MS

    def speech_since_ms(self, after_ms: int) -> int | None:
        """The first frame after `after_ms` that starts `ONSET_FRAMES` loud frames in a row (ms
        on the stream clock), or None while there is none."""
        loud = self._loud()
        first = max(0, after_ms // FRAME_MS - (self._frames_seen - loud.size))
        run = 0
        for index in range(first, loud.size):
            run = run + 1 if loud[index] else 0
            if run == ONSET_FRAMES:
                return (self._frames_seen - loud.size + index - ONSET_FRAMES + 1) * FRAME_MS
        return None

    def _loud(self) -> np.ndarray:
        levels = np.fromiter(self._levels_db, dtype=np.float64, count=len(self._levels_db))
        if levels.size == 0:
            return levels.astype(bool)
        floor_db, loud_db = np.percentile(levels, [10, 99])
        return levels > max(floor_db + FLOOR_MARGIN_DB, loud_db - BELOW_LOUD_DB)
