"""Voiceprints on the worker: embedding an enrolled speaker, and naming a job's speakers.

Both use the engine's own speaker model (Resemblyzer on Whisper workers, cam++ on FunASR
ones), and each voiceprint records which model made it, so a job compares only vectors of
the model that embeds its speakers.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np

from shared.audio import decode_16k_mono
from shared.db.models import SpeakerStatus
from shared.db.speakers import SpeakerRepository
from shared.engines_catalog import engine_named
from shared.errors import NotSupportedError, OddAsrError
from shared.storage import StorageKeyNotFound
from shared.transcript import Transcript
from worker.engines.voiceprints import identify, normalised_mean
from worker.services.runtime import WorkerRuntime

logger = logging.getLogger(__name__)


class SpeakerEmbeddingEngine(Protocol):
    speaker_model: str | None

    def embed_speaker(self, clip: np.ndarray) -> np.ndarray: ...


def speaker_model_of(engine: object) -> str | None:
    """The engine's speaker-model name, or None where it has none (or no such notion)."""
    return getattr(engine, "speaker_model", None) if hasattr(engine, "embed_speaker") else None


def run_enrollment(runtime: WorkerRuntime, speaker_id: str) -> str | None:
    """Embed the speaker's parts, store the voiceprint, delete the audio; the final status,
    or None when there was nothing to do (deleted, or done by an earlier delivery).

    Transient errors (storage or database down) propagate so the task can retry."""
    repository = SpeakerRepository(runtime.jobs.session_factory)
    row = repository.find(speaker_id)
    if row is None or row.status != SpeakerStatus.ENROLLING:
        logger.info("speaker %s is %s; nothing to do", speaker_id, row.status if row else "gone")
        return None
    keys = list(row.audio_keys or [])
    model = speaker_model_of(runtime.engine)
    try:
        if model is None:
            raise NotSupportedError(engine_named(runtime.engine.name).no_speaker_model_reason())
        engine: SpeakerEmbeddingEngine = runtime.engine  # type: ignore[assignment]
        embeddings = [engine.embed_speaker(clip) for clip in _clips(runtime, keys)]
        if not embeddings:
            raise NotSupportedError("the enrollment holds no audio")
        embedding = normalised_mean(embeddings)
    except StorageKeyNotFound:
        return _failed(runtime, repository, speaker_id, keys, "the uploaded audio is missing from storage")
    except OddAsrError as exc:
        if exc.transient:
            raise
        return _failed(runtime, repository, speaker_id, keys, exc.message)
    except ValueError as exc:
        return _failed(runtime, repository, speaker_id, keys, f"no usable voice in the audio: {exc}")
    if repository.mark_ready(speaker_id, [round(float(x), 6) for x in embedding], model):
        logger.info("speaker %s enrolled with %s from %d part(s)", speaker_id, model, len(keys))
    _delete_audio(runtime, keys)
    return SpeakerStatus.READY.value


def _clips(runtime: WorkerRuntime, keys: list[str]) -> list[np.ndarray]:
    clips = []
    with tempfile.TemporaryDirectory(prefix="oddasr-speaker-") as tmp:
        for index, key in enumerate(keys):
            path = Path(tmp) / f"part{index}"
            runtime.storage.download_to(key, path)
            clips.append(decode_16k_mono(path, max_duration_s=runtime.settings.max_audio_duration_s))
    return clips


def _failed(runtime: WorkerRuntime, repository: SpeakerRepository, speaker_id: str, keys: list[str],
            reason: str) -> str:
    logger.warning("speaker %s could not be enrolled: %s", speaker_id, reason)
    repository.mark_failed(speaker_id, reason)
    _delete_audio(runtime, keys)
    return SpeakerStatus.FAILED.value


def _delete_audio(runtime: WorkerRuntime, keys: list[str]) -> None:
    """The voiceprint is all that is kept: the enrollment audio is deleted once embedded."""
    for key in keys:
        try:
            runtime.storage.delete(key)
        except Exception:  # a leftover file is retention's concern, never the enrollment's
            logger.warning("could not delete enrollment audio %s", key, exc_info=True)


def name_speakers(runtime: WorkerRuntime, owner: str, audio: np.ndarray, transcript: Transcript) -> Transcript:
    """The transcript with each diarized speaker named after the key's best-matching voiceprint."""
    model = speaker_model_of(runtime.engine)
    if model is None:
        raise NotSupportedError("identify_speakers needs the engine's speaker model: "
                                + engine_named(runtime.engine.name).no_speaker_model_reason())
    voiceprints = SpeakerRepository(runtime.jobs.session_factory).voiceprints(owner, model)
    if not voiceprints:
        logger.info("identify_speakers: key %s has no %s voiceprints; speakers keep their numbers",
                    owner or "-", model)
        return transcript
    engine: SpeakerEmbeddingEngine = runtime.engine  # type: ignore[assignment]
    segments = identify(audio, transcript.segments, engine.embed_speaker,
                        [(v.name, v.embedding) for v in voiceprints], runtime.settings.speaker_match_threshold)
    return transcript.model_copy(update={"segments": segments})
