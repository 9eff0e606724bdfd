"""What every transcript gets: the original's word lists (odd_asr_slp_cfg) and the ITN default."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel


class TranscriptSettings(BaseModel):
    """Sensitive words masked in every transcript, the default hotwords, the use_itn default."""

    #: One word or phrase a line; each is masked in every transcript (None: none).
    sensitive_words_path: Path | None = None
    sensitive_words_mask: str = "***"
    #: The original's hotword file (`word weight` lines): the default hotword set of every job.
    hotwords_path: Path | None = None
    #: The default of the per-job `use_itn` switch (None: each engine's own way; see README).
    use_itn: bool | None = None
