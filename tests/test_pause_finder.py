"""The causal pause finder the live Moonshine path closes long sentences with."""

from __future__ import annotations

import numpy as np

from worker.engines.pause_finder import PauseFinder

RATE_HZ = 16000


def _noise(seconds: float, level: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * RATE_HZ)) * level).astype(np.float32)


def _speechlike(seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))).astype(np.float32) \
        + _noise(seconds, 0.001, seed)


def test_a_pause_in_room_noise_is_found_where_it_began_and_speech_where_it_came_back() -> None:
    finder = PauseFinder(RATE_HZ)
    finder.accept(_noise(1.0, 0.001, 1))  # room noise, then speech
    finder.accept(_speechlike(2.0, 2))
    assert finder.quiet_since_ms() is None, "speech is still going on"
    finder.accept(_noise(0.3, 0.001, 3))
    assert abs(finder.quiet_since_ms() - 3000) <= 20
    assert finder.speech_since_ms(3000) is None, "nothing came back yet"
    for offset in range(0, 1600 * 3, 1600):  # speech again, arriving in 100 ms frames
        finder.accept(_speechlike(0.3, 4)[offset:offset + 1600])
    assert abs(finder.speech_since_ms(3000) - 3300) <= 20
    assert finder.quiet_since_ms() is None


def test_a_click_in_a_pause_is_not_speech_coming_back() -> None:
    finder = PauseFinder(RATE_HZ)
    finder.accept(_speechlike(2.0, 5))
    finder.accept(_noise(0.3, 0.001, 6))
    finder.accept(_speechlike(0.02, 7))  # two loud frames: under ONSET_FRAMES
    finder.accept(_noise(0.2, 0.001, 8))
    assert finder.speech_since_ms(2000) is None
    assert finder.quiet_since_ms() is not None
