"""Named speakers: matching diarized speakers to enrolled voiceprints, and enrollment."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SpeakerSettings(BaseModel):
    """Voiceprint matching and enrollment (identify_speakers, POST /v1/speakers)."""

    #: Named speakers (identify_speakers): a diarized speaker takes the name of the key's
    #: enrolled voiceprint whose cosine similarity is highest, if at least this; else it stays
    #: `Speaker N`. Measured with bench/voiceprint.py (see README, "Named speakers").
    speaker_match_threshold: float = 0.92
    #: The same for one sentence of a live session (start option `speakers`): a sentence's few
    #: seconds of voice score lower against its own voiceprint than a file's speaker does (one
    #: generated voice: 0.88-0.97 a sentence), so the file threshold would leave a speaker's
    #: first sentences unnamed. Distinct voices scored at most 0.60 (bench/live_speakers.py).
    live_speaker_match_threshold: float = Field(default=0.85, ge=-1.0, le=1.0)
    #: How long `POST /v1/speakers` waits for the worker's embedding before it answers 202.
    speaker_enroll_wait_s: float = 30.0
    #: Enrollment audio under `speakers/` that no enrolling speaker holds is deleted by the
    #: retention sweep once it is this old (a failed or crashed enrollment left it), and an
    #: enrollment still `enrolling` after this long fails. Keep it far above the time a worker
    #: takes to embed one (seconds) plus the queue's wait.
    speaker_audio_orphaned_after_s: float = Field(default=24 * 3600.0, gt=0)
