"""Small messages that cross process boundaries, dumped to JSON: ids and keys, never audio."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.render import RENDERERS

#: The task name both sides agree on; the API sends it by name and never imports the worker.
TRANSCRIBE_TASK_NAME = "oddasr.transcribe"
#: One attempt of one webhook delivery (argument: the delivery's id, its `webhook-id`).
DELIVER_WEBHOOK_TASK_NAME = "oddasr.deliver_webhook"
#: Embed an enrolled speaker's uploaded audio (argument: the speaker's id).
ENROLL_SPEAKER_TASK_NAME = "oddasr.enroll_speaker"
#: Copy a live session's recording into the file job it is owed (arguments: the session's id,
#: the reprocess mode and the token of the reconciler's claim on it).
REPROCESS_SESSION_TASK_NAME = "oddasr.reprocess_session"


class JobOptions(BaseModel):
    """What a client asked for, validated by the API, read by the worker."""

    language: str | None = None
    hotwords: list[str] = Field(default_factory=list)
    diarize: bool = False
    #: Checked by the API (api/options.py); the enum is for the published schema.
    output_format: str = Field("txt", json_schema_extra={"enum": sorted(RENDERERS)})
    word_timestamps: bool = False
    min_speakers: int | None = None
    max_speakers: int | None = None
    #: Name diarized speakers after the key's enrolled voiceprints (needs diarize).
    identify_speakers: bool = False
    #: Mask the configured sensitive words; only admin keys may turn it off.
    mask_sensitive_words: bool = True
    #: Inverse text normalization ("twenty five" -> "25"); None: the engine's own way.
    use_itn: bool | None = None
    #: The hotword set the job used (its words are in `hotwords`, heaviest first) and its version.
    hotword_set: str | None = None
    hotword_set_version: str | None = None
    hotword_weights: dict[str, int] = Field(default_factory=dict)


class JobEvent(BaseModel):
    """Published on a job's events channel when it reaches a final status."""

    job_id: str
    status: str
