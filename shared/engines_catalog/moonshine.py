"""Moonshine tiny: a live-only engine for English, which answers in a third of a second."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.engines_catalog.descriptor import EngineDescriptor, is_english

if TYPE_CHECKING:
    from shared.config import Settings


class MoonshineDescriptor(EngineDescriptor):
    name = "moonshine"
    serves_files = False
    #: It cannot be biased towards words: under `auto`, sessions with hotwords go elsewhere.
    hotwords = False

    def languages(self, settings: Settings) -> tuple[str, ...]:
        return ("en",)

    def model_name(self, settings: Settings) -> str:
        return "tiny"

    def live_language_refusal(self, language: str | None) -> str | None:
        if not is_english(language):
            return (f"this server's live engine (Moonshine) transcribes English only, not {language!r}: ask its "
                    "operator for stream_engine=auto or whisper")
        return None


MOONSHINE = MoonshineDescriptor()
