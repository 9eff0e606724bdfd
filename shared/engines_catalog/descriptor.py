"""What the service knows about an engine without loading it: the base of every descriptor.

A descriptor is data plus small functions of the settings. It lives in shared/ because the API
must know what an engine can do (to refuse an option with a clear message before anything is
stored or queued) and the API never imports worker code or an engine library. The worker's
registry (worker/engines/registry.py) maps each descriptor to the code that loads it.

Callers ask the descriptor (`engine.supports_diarization(settings)`, `engine.languages(settings)`)
instead of comparing engine names: a new engine is a descriptor module, one line in the catalog
(shared/engines_catalog/__init__.py), its worker module and one entry in the worker's registry.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from shared.config import Settings

#: OpenAI's usual model id, which every engine answers to on /v1/audio/transcriptions.
OPENAI_MODEL_ALIAS = "whisper-1"
ENGLISH_CODES = frozenset({"en", "english"})


def is_english(language: str | None) -> bool:
    """True for `en`, `en-US`, `en_GB`, `English` and for no language at all (a live session
    that names none counts as English: see live_engines in the worker)."""
    if not language:
        return True
    return language.replace("_", "-").split("-")[0].strip().lower() in ENGLISH_CODES


class Itn(StrEnum):
    """What the `use_itn` switch can do on an engine and model."""

    #: Numbers, dates and amounts always come out in written form: no switch to turn it off.
    ALWAYS = "always"
    #: Spoken forms only: no inverse text normalization to turn on.
    NEVER = "never"
    #: The model takes the switch.
    SWITCH = "switch"


class EngineDescriptor:
    """One engine: its name as settings spell it, and what it can do with given settings.

    The defaults describe an engine that serves file jobs and live sessions, with hotwords,
    without word timestamps, speaker labels or an ITN switch; each engine overrides what differs.
    """

    #: The name `engine` / `stream_engine` take in settings, and the prefix of its model ids.
    name: ClassVar[str]
    #: Serves file and sentence jobs (a value of `engine`); False: a live-only engine.
    serves_files: ClassVar[bool] = True
    #: Serves live sessions (a value of `stream_engine`).
    serves_live: ClassVar[bool] = True
    word_timestamps: ClassVar[bool] = False
    #: Can be biased towards a client's hotwords.
    hotwords: ClassVar[bool] = True
    #: With `stream_engine=auto` and this file engine: the live-only engine that serves English
    #: sessions without hotwords (faster), the others going to this engine; None: all to this one.
    auto_live_english: ClassVar[EngineDescriptor | None] = None
    #: Live sessions one stream worker process may serve at once with this file engine; None:
    #: `stream_sessions_per_worker` decides.
    max_live_sessions_per_process: ClassVar[int | None] = None
    #: Why `stream_engine=<name>` needs `engine=<name>` (what it borrows from the file engine);
    #: None: its live model stands alone.
    live_needs_file_engine: ClassVar[str | None] = None

    def languages(self, settings: Settings) -> tuple[str, ...]:
        """The codes a job's `language` may take with this engine and its configured model."""
        raise NotImplementedError

    def describe(self, settings: Settings) -> str:
        """The engine as a refusal message names it."""
        return f"the {self.name} engine"

    def model_name(self, settings: Settings) -> str:
        """The configured model, as /v1/models names it after the engine."""
        raise NotImplementedError

    def model_ids(self, settings: Settings) -> list[str]:
        """Model ids listed by /v1/models: the configured one plus OpenAI's usual alias."""
        return [f"{self.name}-{self.model_name(settings)}", OPENAI_MODEL_ALIAS]

    def supports_diarization(self, settings: Settings) -> bool:
        """Whether this server's workers can label speakers (and embed voiceprints)."""
        return False

    def diarize_unavailable_reason(self) -> str:
        """What an operator sets to get speaker labels from this engine, for the API's refusal."""
        return f"speaker labels (diarize) are not supported by the {self.name} engine"

    def no_speaker_model_reason(self) -> str:
        """The same, as a worker that was asked to embed a voiceprint says it."""
        return f"this worker's {self.name} engine has no speaker model"

    def itn(self, settings: Settings) -> Itn:
        return Itn.NEVER

    def itn_refusal(self, settings: Settings, use_itn: bool | None) -> str | None:
        """Why `use_itn` cannot be honoured by this engine and model, or None."""
        return None

    def live_language_refusal(self, language: str | None) -> str | None:
        """Why a live session in `language` cannot be served by this live engine, or None (the
        API asks before it holds a stream worker)."""
        return None

    def settings_problem(self, settings: Settings) -> str | None:
        """A configured model this machine cannot load, said before any process starts."""
        return None

    def __repr__(self) -> str:
        return f"<engine {self.name}>"
