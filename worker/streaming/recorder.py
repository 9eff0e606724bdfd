"""A live session's audio, written to a local WAV file as it arrives and stored at the end
(by worker.services.session_end, which parks it here on the disk when storage fails).

On disk, not in memory: a three-hour session is 345 MB of PCM, and the worker's memory must
stay flat however long a session runs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import soundfile

from worker.engines.base import SAMPLE_RATE_HZ


class SessionRecorder:
    def __init__(self, data_dir: Path, session_id: str) -> None:
        directory = Path(data_dir) / "stream-recordings"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{session_id}.wav"
        self._file = soundfile.SoundFile(self.path, mode="w", samplerate=SAMPLE_RATE_HZ, channels=1,
                                         subtype="PCM_16", format="WAV")
        self._samples = 0
        self._kept = False

    @property
    def duration_s(self) -> float:
        return self._samples / SAMPLE_RATE_HZ

    def write(self, samples: np.ndarray) -> None:
        if samples.size:
            self._file.write(np.clip(samples, -1.0, 1.0))
            self._samples += samples.size

    def close(self) -> None:
        """The recording is complete: its WAV header is written, the file can be stored."""
        with contextlib.suppress(Exception):
            self._file.close()

    def keep(self) -> None:
        """Never delete this file: it is the only copy of a recording nothing could store."""
        self._kept = True

    def discard(self) -> None:
        """Delete the local file once it is stored (or parked elsewhere); a kept one stays."""
        self.close()
        if not self._kept:
            self.path.unlink(missing_ok=True)
