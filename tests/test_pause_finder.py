"""The causal pause finder the live Moonshine path closes long sentences with."""

from __future__ import annotations

import numpy as np

from worker.engines.pause_finder import PAUSE, SPEECH, PauseFinder

RATE_HZ = 16000


def _noise(seconds: float, level: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * RATE_HZ)) * level).astype(np.float32)


def _speechlike(seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))).astype(np.float32) \
        + _noise(seconds, 0.001, seed)


def _stream() -> np.ndarray:
    """Room noise 1 s, speech 2 s, a 300 ms pause, speech 0.5 s, then 200 ms quiet, a two-frame
    click and 180 ms quiet."""
    click = _speechlike(0.02, 7)
    return np.concatenate([_noise(1.0, 0.001, 1), _speechlike(2.0, 2), _noise(0.3, 0.001, 3),
                           _speechlike(0.5, 4), _noise(0.2, 0.001, 5), click, _noise(0.18, 0.001, 6)])


def _events(samples: np.ndarray, piece: int) -> list[tuple[str, int]]:
    finder = PauseFinder(RATE_HZ, pause_ms=250)
    return [event for start in range(0, samples.size, piece) for event in finder.accept(samples[start:start + piece])]


def test_pauses_are_found_where_they_began_and_speech_where_it_came_back() -> None:
    events = [(kind, at_ms) for kind, at_ms in _events(_stream(), 1600) if at_ms >= 1000]
    kinds = [kind for kind, _ in events]
    assert kinds == [SPEECH, PAUSE, SPEECH], events
    (_, speech_ms), (_, pause_ms), (_, back_ms) = events
    assert abs(speech_ms - 1000) <= 20 and abs(pause_ms - 3000) <= 20 and abs(back_ms - 3300) <= 20
    # The click is no speech (no event), but it ends the quiet: neither stretch around it is a
    # pause. Frames around a word's fricative must never make one.


def test_a_fricative_just_under_the_threshold_is_no_pause() -> None:
    """A word's quiet stretch ("times": its "s") sits a few dB under the loudness threshold:
    only frames well under it (`QUIET_BELOW_DB`) make a pause."""
    finder = PauseFinder(RATE_HZ, pause_ms=250)
    finder.accept(np.concatenate([_noise(1.0, 0.001, 1), _speechlike(2.0, 2)]))
    threshold_level = 10 ** ((finder._threshold_db - 3.0) / 20) * np.sqrt(2)  # a sine 3 dB under it
    t = np.arange(int(0.4 * RATE_HZ)) / RATE_HZ
    events = finder.accept((threshold_level * np.sin(2 * np.pi * 4000 * t)).astype(np.float32))
    assert PAUSE not in [kind for kind, _ in events], events


def test_the_same_audio_gives_the_same_events_however_it_is_cut() -> None:
    """A resumed session resends its audio in other pieces: its sentences must not change."""
    samples = _stream()
    assert _events(samples, 1600) == _events(samples, 960) == _events(samples, 1234) == _events(samples, 16000)
