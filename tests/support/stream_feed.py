"""Feeding a live engine's session directly, as the worker's session loop does."""

from __future__ import annotations

from typing import Any

import numpy as np

from worker.engines.base import StreamEvent


def feed(session: Any, audio: np.ndarray, frame_samples: int, *, finish: bool = True) -> list[StreamEvent]:
    """Frames of `frame_samples`, a partial asked for after each, then (with `finish`) the end."""
    events: list[StreamEvent] = []
    for offset in range(0, audio.size, frame_samples):
        events.extend(session.accept_audio(audio[offset:offset + frame_samples]))
        partial = session.partial()
        if partial is not None:
            events.append(partial)
    if finish:
        events.extend(session.finish())
    return events
