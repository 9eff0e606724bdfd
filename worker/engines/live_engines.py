"""Which engine serves a live session: one owner for the choice `stream_engine` configures.

A stream worker process loads what its setting needs once (worker/engines/registry.py, from
the engine catalog's descriptors), and each session gets its engine when it starts (a session
never changes engine):

- `auto` with the Whisper file engine: English sessions (language `en` or unset) without hotwords
  go to Moonshine tiny, which answers in a third of a second; other languages, and sessions
  with hotwords (Moonshine cannot be biased towards words), go to the configured Whisper model;
- `auto` with the FunASR file engine: FunASR's streaming model (2pass), as its clients expect;
- `moonshine`, `whisper`, `funasr`: that engine for every session; Moonshine refuses a session
  in another language with a message saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.engines_catalog import MOONSHINE, is_english
from shared.errors import NotSupportedError
from worker.engines.base import StreamingEngine, StreamOptions


@dataclass
class LiveEngines:
    """The live engines a stream worker process loaded, and the rule that picks one per session."""

    mode: str
    #: The engine of sessions Moonshine does not take (Whisper or FunASR's 2pass); None where
    #: `stream_engine=moonshine` loaded no other.
    general: StreamingEngine | None
    moonshine: StreamingEngine | None = None

    @property
    def name(self) -> str:
        return "+".join(engine.name for engine in (self.moonshine, self.general) if engine is not None)

    @property
    def model_name(self) -> str:
        return "+".join(engine.model_name for engine in (self.moonshine, self.general) if engine is not None)

    def choose(self, options: StreamOptions) -> StreamingEngine:
        if self.moonshine is not None and self.mode == MOONSHINE.name:
            refusal = MOONSHINE.live_language_refusal(options.language)
            if refusal:
                raise NotSupportedError(refusal)
            return self.moonshine
        if self.moonshine is not None and is_english(options.language) and not options.hotwords:
            return self.moonshine
        if self.general is None:
            raise NotSupportedError("no live engine serves this session")
        return self.general
