"""FunASR (Paraformer, SeacoParaformer, SenseVoice; fsmn-vad, ct-punc, cam++) as the API knows it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.engines_catalog.descriptor import EngineDescriptor, Itn

if TYPE_CHECKING:
    from shared.config import Settings

#: FunASR's Paraformer models transcribe Mandarin with English words mixed in; the configured
#: `funasr_language` (a model for another language) is accepted as well.
FUNASR_LANGUAGES: tuple[str, ...] = ("zh", "en")


class FunAsrDescriptor(EngineDescriptor):
    name = "funasr"
    #: FunASR's AutoModel swaps its settings dict on every call (not thread-safe: two sessions'
    #: streaming caches could cross), so its stream workers take one session each.
    max_live_sessions_per_process = 1
    live_needs_file_engine = "borrows the FunASR file engine's offline model"

    def languages(self, settings: Settings) -> tuple[str, ...]:
        language = settings.funasr_language
        extra = (language,) if language and language not in FUNASR_LANGUAGES else ()
        return FUNASR_LANGUAGES + extra

    def model_name(self, settings: Settings) -> str:
        return "paraformer"

    def supports_diarization(self, settings: Settings) -> bool:
        """Speaker labels need a speaker model (cam++)."""
        return bool(settings.funasr_spk_model)

    def diarize_unavailable_reason(self) -> str:
        return "speaker labels (diarize) need a speaker model with the funasr engine: set ODDASR_FUNASR_SPK_MODEL"

    def no_speaker_model_reason(self) -> str:
        return "this worker's funasr engine has no speaker model: set ODDASR_FUNASR_SPK_MODEL (cam++)"

    def itn(self, settings: Settings) -> Itn:
        """SenseVoice models take the switch; Paraformer models write spoken forms."""
        return Itn.SWITCH if "sensevoice" in settings.funasr_asr_model.lower() else Itn.NEVER

    def itn_refusal(self, settings: Settings, use_itn: bool | None) -> str | None:
        if use_itn is True and self.itn(settings) == Itn.NEVER:
            return (f"the configured FunASR model ({settings.funasr_asr_model or 'paraformer'}) writes spoken forms "
                    "and has no inverse text normalization: use_itn=true needs a SenseVoice model (funasr_asr_model)")
        return None


FUNASR = FunAsrDescriptor()
