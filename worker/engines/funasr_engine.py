"""FunASR's full file pipeline through `funasr.AutoModel`: ASR (Paraformer / SeacoParaformer),
fsmn-vad, punctuation (ct-punc) and speaker embeddings (cam++), with hotwords and sentence
timestamps, turned into the service's Transcript.

Offline rules (see OFFLINE-MODELS.md): local directories never touch a hub; hub ids are
refused unless downloads are allowed; `disable_update` keeps AutoModel from asking PyPI;
audio goes in as float32 arrays; thread count and log levels are restored after loading.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from shared.config import FunAsrSettings, Settings
from shared.engines_catalog.funasr import FUNASR
from shared.errors import EngineError, NotSupportedError
from shared.segment_timing import fit_to_speech
from shared.transcript import Transcript, join_texts
from worker.engines.base import SAMPLE_RATE_HZ, ProgressCallback, TranscriptionOptions
from worker.engines.fsmn_vad import current_log_levels, restore_process_settings
from worker.engines.fsmn_vad_lite import FsmnVadLite
from worker.engines.funasr_timestamps import segments_from_result
from worker.engines.model_files import ModelFile, resolve_vad_model_dir, vad_model_file
from worker.engines.speech_spans import speech_spans_s
from worker.engines.voiceprints import CAMPPLUS_MODEL

logger = logging.getLogger(__name__)


def resolve_funasr_model(name: str, settings: FunAsrSettings) -> str:
    """A local directory for `name`: as given, or downloaded before into funasr_model_dir."""
    if Path(name).is_dir():
        return name
    if settings.funasr_model_dir is not None:
        downloaded = Path(settings.funasr_model_dir) / name
        if (downloaded / "config.yaml").is_file() or (downloaded / "configuration.json").is_file():
            return str(downloaded)
    if settings.funasr_allow_download:
        return name  # AutoModel fetches it from the hub
    raise EngineError(
        f"FunASR model {name!r} is not a local directory: run `oddasr models download` on a machine that "
        "reaches the model hub, or set ODDASR_FUNASR_ALLOW_DOWNLOAD=true"
    )


def funasr_models(settings: Settings) -> dict[str, str]:
    """Every FunASR model the configuration names, by role; `stream` is what stream workers
    decode live text with (e.g. paraformer-zh-streaming)."""
    return {role: name for role, name in (("asr", settings.funasr_asr_model), ("vad", settings.funasr_vad_model),
                                          ("punc", settings.funasr_punc_model), ("spk", settings.funasr_spk_model),
                                          ("stream", settings.funasr_stream_asr_model))
            if name}


def model_files(settings: Settings) -> list[ModelFile]:
    """What the FunASR engine loads: the VAD, then every configured FunASR model."""
    return [vad_model_file(settings)] + [
        ModelFile(role, name, lambda name=name: resolve_funasr_model(name, settings))  # type: ignore[misc]
        for role, name in funasr_models(settings).items()]


class FunAsrEngine:
    name = FUNASR.name

    def __init__(self, settings: FunAsrSettings) -> None:
        """`settings`: the FunASR section (`Settings.funasr`), all this engine reads."""
        if not settings.funasr_asr_model:
            raise EngineError("the funasr engine needs ODDASR_FUNASR_ASR_MODEL (a hub id or a model directory)")
        saved_levels = current_log_levels()
        from funasr import AutoModel

        threads = settings.cpu_threads or os.cpu_count() or 1
        vad_dir = settings.funasr_vad_model or str(resolve_vad_model_dir(settings.vad_model_dir))
        kwargs: dict[str, Any] = {
            "model": resolve_funasr_model(settings.funasr_asr_model, settings),
            "vad_model": resolve_funasr_model(vad_dir, settings),
            "vad_kwargs": {"max_end_silence_time": settings.vad_max_end_silence_ms},
            "device": settings.device, "ncpu": threads, "disable_update": True, "disable_pbar": True,
            "disable_log": True,
        }
        if settings.funasr_punc_model:
            kwargs["punc_model"] = resolve_funasr_model(settings.funasr_punc_model, settings)
        if settings.funasr_spk_model:
            kwargs["spk_model"] = resolve_funasr_model(settings.funasr_spk_model, settings)
        try:
            self._model = AutoModel(**kwargs)
        except Exception as exc:  # FunASR raises anything from a bad config; say which model
            raise EngineError(f"FunASR could not load {kwargs['model']}: {type(exc).__name__}: {exc}") from exc
        finally:
            restore_process_settings(threads, saved_levels)
        self.model_name = Path(settings.funasr_asr_model).name or settings.funasr_asr_model
        self.supports_diarization = FUNASR.supports_diarization(settings)
        #: The model voiceprints are made with; None without a speaker model (cam++).
        self.speaker_model: str | None = CAMPPLUS_MODEL if settings.funasr_spk_model else None
        self._device = settings.device
        self._language = settings.funasr_language
        self._batch_size_s = settings.funasr_batch_size_s
        self._speech_vad = _speech_vad(Path(kwargs["vad_model"]), settings)

    def transcribe(
        self, audio: np.ndarray, options: TranscriptionOptions, progress: ProgressCallback | None = None
    ) -> Transcript:
        if options.diarize and not self.supports_diarization:
            raise NotSupportedError("speaker labels (diarize) need a speaker model: set ODDASR_FUNASR_SPK_MODEL")
        if options.word_timestamps:
            raise NotSupportedError("word timestamps are not supported by the funasr engine")
        duration_s = audio.size / SAMPLE_RATE_HZ
        if progress is not None:
            progress(0.0)
        generate_kwargs: dict[str, Any] = {"batch_size_s": self._batch_size_s, "disable_pbar": True}
        if options.hotwords:
            generate_kwargs["hotword"] = " ".join(options.hotwords)
        if options.use_itn is not None:  # SenseVoice models read it; the API refuses it for others
            generate_kwargs["use_itn"] = options.use_itn
        if options.diarize and options.min_speakers and options.min_speakers == options.max_speakers:
            generate_kwargs["preset_spk_num"] = options.min_speakers
        try:
            results = self._model.generate(input=audio, **generate_kwargs) if audio.size else []
        except Exception as exc:  # a model failure is a failed job with its reason, never a dead worker
            raise EngineError(f"FunASR failed: {type(exc).__name__}: {exc}") from exc
        # Segments cut at sentence ends and pauses, timed by the speech (one cue for the whole
        # file without a speaker model, before).
        segments = segments_from_result(results[0] if results else {}, diarize=options.diarize)
        segments = fit_to_speech(segments, speech_spans_s(self._speech_vad, audio) if segments else [])
        segments = [s.model_copy(update={"words": []}) for s in segments]
        if progress is not None:
            progress(1.0)
        return Transcript(text=join_texts(s.text for s in segments), segments=segments, language=self._language,
                          duration_s=duration_s, engine=self.name, model=self.model_name)


    def decode_sentence(self, audio: np.ndarray, hotwords: tuple[str, ...] = ()) -> str:
        """One closed sentence of a live session (2pass's correction): the offline ASR model with
        the client's hotwords, then punctuation, on the sentence alone. The stream worker's
        VAD already cut it, so the pipeline's own VAD and speaker model are skipped; the models
        are this engine's, so a stream worker holds one copy of them."""
        if audio.size < SAMPLE_RATE_HZ // 100:
            return ""
        generate_kwargs: dict[str, Any] = {"disable_pbar": True}
        if hotwords:
            generate_kwargs["hotword"] = " ".join(hotwords)
        try:
            results = self._model.inference(np.ascontiguousarray(audio, dtype=np.float32), **generate_kwargs)
            text = str(results[0].get("text", "")).strip() if results else ""
            if text and self._model.punc_model is not None:
                punctuated = self._model.inference(text, model=self._model.punc_model,
                                                   kwargs=self._model.punc_kwargs, disable_pbar=True)
                text = str(punctuated[0].get("text", text)).strip() if punctuated else text
        except Exception as exc:  # a model failure ends the session with its reason, never the worker
            raise EngineError(f"FunASR failed on a sentence: {type(exc).__name__}: {exc}") from exc
        return text

    def embed_speaker(self, clip: np.ndarray) -> np.ndarray:
        """One voice's embedding from the pipeline's own speaker model (cam++), L2-normalised:
        the same vectors FunASR clusters for speaker labels, so voiceprints match them."""
        spk_model = getattr(self._model, "spk_model", None)
        if self.speaker_model is None or spk_model is None:
            raise NotSupportedError("speaker embeddings (voiceprints) need a speaker model with the funasr engine: "
                                    "set ODDASR_FUNASR_SPK_MODEL (cam++)")
        import torch

        try:
            with torch.no_grad():
                results, _meta = spk_model.inference([np.ascontiguousarray(clip, dtype=np.float32)],
                                                     device=self._device)
            vector = np.asarray(results[0]["spk_embedding"].detach().cpu().numpy(), dtype=np.float64).reshape(-1)
        except Exception as exc:  # a model failure is a failed job with its reason, never a dead worker
            raise EngineError(f"the speaker model (cam++) failed: {type(exc).__name__}: {exc}") from exc
        return vector / (np.linalg.norm(vector) or 1.0)


def _speech_vad(vad_path: Path, settings: FunAsrSettings) -> FsmnVadLite:
    """The pipeline's fsmn-vad weights in numpy, for the speech spans that time the segments;
    the shipped weights where they cannot load that way (a hub id, which lands in FunASR's
    cache, or a directory without `model.pt`)."""
    if vad_path.is_dir():
        try:
            return FsmnVadLite(vad_path, max_end_silence_ms=settings.vad_max_end_silence_ms)
        except EngineError as exc:
            logger.info("timing segments with the shipped fsmn-vad weights: %s", exc)
    return FsmnVadLite(resolve_vad_model_dir(settings.vad_model_dir),
                       max_end_silence_ms=settings.vad_max_end_silence_ms)
