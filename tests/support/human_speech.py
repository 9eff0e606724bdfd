"""Real human speech with known text: the two recordings the moonshine_voice wheel ships
(installed with the models, requirements/models.txt), found without importing the package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

TWO_CITIES_TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair, we had "
    "everything before us, we had nothing before us, we were all going direct to Heaven, we were all going "
    "direct the other way. In short, the period was so far like the present period, that some of its "
    "noisiest authorities insisted on its being received, for good or for evil, in the superlative degree "
    "of comparison only."
)
BECKETT_TEXT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."
#: (file name in the wheel's assets folder, what it says): Dickens read aloud, then Beckett.
HUMAN_CLIPS = (("two_cities.wav", TWO_CITIES_TEXT), ("beckett.wav", BECKETT_TEXT))


def human_speech_dir() -> Path | None:
    """moonshine_voice's assets folder; None if the package or a recording is absent."""
    spec = importlib.util.find_spec("moonshine_voice")
    if spec is None or not spec.submodule_search_locations:
        return None
    assets = Path(next(iter(spec.submodule_search_locations))) / "assets"
    return assets if all((assets / name).is_file() for name, _ in HUMAN_CLIPS) else None
