"""The engine catalog: every engine and what it can do, known to the API without engine code.

The API checks requests against the descriptors so an option the configured engine cannot
honour is refused with a clear message instead of being silently ignored; the worker's
registry (worker/engines/registry.py) maps the same descriptors to the code that loads them.
This module is the one place outside worker/engines that reads an engine's name: the settings
validate `engine` and `stream_engine` against the names below, and every caller then asks the
descriptor (`file_engine(settings).supports_diarization(settings)`), never compares names.

Adding an engine: a descriptor module beside this one, its entry in `ENGINES`, its worker
module and its entry in the worker's registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.engines_catalog.descriptor import OPENAI_MODEL_ALIAS, EngineDescriptor, Itn, is_english
from shared.engines_catalog.funasr import FUNASR
from shared.engines_catalog.moonshine import MOONSHINE
from shared.engines_catalog.whisper import WHISPER

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = ["DEFAULT_FILE_ENGINE", "ENGINES", "FILE_ENGINE_NAMES", "FUNASR", "LIVE_AUTO", "MOONSHINE",
           "OPENAI_MODEL_ALIAS", "WHISPER",
           "STREAM_ENGINE_CHOICES", "EngineDescriptor", "Itn", "engine_named", "file_engine", "is_english",
           "live_engine", "live_language_refusal", "stream_engine_problem"]

#: Every engine, by the name settings give it (in the order settings' messages list them).
ENGINES: dict[str, EngineDescriptor] = {engine.name: engine for engine in (MOONSHINE, WHISPER, FUNASR)}
#: The values `engine` takes: the engines that serve file jobs.
FILE_ENGINE_NAMES: tuple[str, ...] = tuple(name for name, engine in ENGINES.items() if engine.serves_files)
DEFAULT_FILE_ENGINE = WHISPER.name
#: `stream_engine=auto`: the file engine's own choice (see EngineDescriptor.auto_live_english).
LIVE_AUTO = "auto"
#: The values `stream_engine` takes.
STREAM_ENGINE_CHOICES: tuple[str, ...] = (LIVE_AUTO, *(name for name, engine in ENGINES.items()
                                                       if engine.serves_live))


def engine_named(name: str) -> EngineDescriptor:
    """The descriptor of `name`, as settings (already validated) or a loaded engine spell it."""
    return ENGINES[name]


def file_engine(settings: Settings) -> EngineDescriptor:
    """The engine this server's workers transcribe files with (`engine`)."""
    return ENGINES[settings.engine]


def live_engine(settings: Settings) -> EngineDescriptor | None:
    """The engine `stream_engine` names for every live session; None for `auto`."""
    return ENGINES.get(settings.stream_engine)


def live_language_refusal(stream_engine: str, language: str | None) -> str | None:
    """Why a live session in `language` cannot be served by `stream_engine`, or None (`auto`
    routes each session to an engine that knows its language)."""
    engine = ENGINES.get(stream_engine)
    return None if engine is None else engine.live_language_refusal(language)


def stream_engine_problem(engine: str, stream_engine: str) -> str | None:
    """Why `stream_engine` cannot run beside the file engine `engine`, or None: a live engine
    that borrows its file engine's model needs that file engine."""
    live = ENGINES.get(stream_engine)
    if live is None or live.live_needs_file_engine is None or stream_engine == engine:
        return None
    return (f"stream_engine={stream_engine} {live.live_needs_file_engine}: set engine={stream_engine}, "
            f"or stream_engine={LIVE_AUTO}")
