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
both work; a pause is a run of frames `QUIET_BELOW_DB` under it. Everything runs on the
stream's own sample clock, frame by frame, and the threshold is renewed at fixed frames of
that clock: the same audio gives the same pauses however the client cuts it into messages (a
resumed session resends from a byte offset, in other pieces, and must hear the same sentences).
"""

from __future__ import annotations

from collections import deque
from typing import Literal

import numpy as np

FRAME_MS = 10
#: The frame levels the threshold is taken from, and how often (in frames) it is renewed.
HISTORY_S = 10.0
THRESHOLD_EVERY_FRAMES = 10
FLOOR_MARGIN_DB = 15.0
BELOW_LOUD_DB = 30.0
#: Loud frames needed in a row to count as speech coming back (not one click).
ONSET_FRAMES = 3
#: A pause is frames this far under the loudness threshold, every one of them: a word's
#: fricatives ("times") sit just under it, and a pause taken there cut the word in two.
QUIET_BELOW_DB = 6.0

PAUSE: Literal["pause"] = "pause"
SPEECH: Literal["speech"] = "speech"
#: (kind, ms on the stream clock): a pause that has lasted `pause_ms` (at its first quiet frame),
#: or speech that has lasted `ONSET_FRAMES` (at its first loud frame).
PauseEvent = tuple[Literal["pause", "speech"], int]


class PauseFinder:
    """Levels of a stream's 10 ms frames as they arrive, and the pauses and speech in them."""

    def __init__(self, sample_rate_hz: int = 16000, pause_ms: int = 250) -> None:
        self._frame_samples = sample_rate_hz * FRAME_MS // 1000
        self._pause_frames = max(1, pause_ms // FRAME_MS)
        self._pending = np.zeros(0, dtype=np.float32)
        self._levels_db: deque[float] = deque(maxlen=int(HISTORY_S * 1000 / FRAME_MS))
        self._threshold_db = 0.0
        #: Absolute index of the next frame.
        self._frame = 0
        self._quiet_from: int | None = None
        self._pause_reported = False
        self._loud_run = 0

    def accept(self, samples: np.ndarray) -> list[PauseEvent]:
        """The pauses and speech onsets the new samples complete, in order."""
        audio = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        whole = audio.size // self._frame_samples * self._frame_samples
        frames = audio[:whole].reshape(-1, self._frame_samples).astype(np.float64)
        self._pending = audio[whole:]
        events: list[PauseEvent] = []
        for power in np.mean(frames * frames, axis=1):
            event = self._next_frame(10.0 * float(np.log10(power + 1e-12)))
            if event is not None:
                events.append(event)
        return events

    # --- inside --------------------------------------------------------------------------
    def _next_frame(self, level_db: float) -> PauseEvent | None:
        frame = self._frame
        self._frame += 1
        self._levels_db.append(level_db)
        if frame % THRESHOLD_EVERY_FRAMES == 0:
            levels = np.fromiter(self._levels_db, dtype=np.float64, count=len(self._levels_db))
            floor_db, loud_db = np.percentile(levels, [10, 99])
            self._threshold_db = float(max(floor_db + FLOOR_MARGIN_DB, loud_db - BELOW_LOUD_DB))
        if level_db > self._threshold_db - QUIET_BELOW_DB:  # not quiet: no pause goes on through it
            self._quiet_from, self._pause_reported = None, False
        if level_db > self._threshold_db:
            self._loud_run += 1
            if self._loud_run == ONSET_FRAMES:
                return SPEECH, (frame - ONSET_FRAMES + 1) * FRAME_MS
            return None
        self._loud_run = 0
        if level_db > self._threshold_db - QUIET_BELOW_DB:
            return None
        if self._quiet_from is None:
            self._quiet_from = frame
        if not self._pause_reported and frame - self._quiet_from + 1 >= self._pause_frames:
            self._pause_reported = True
            return PAUSE, self._quiet_from * FRAME_MS
        return None
