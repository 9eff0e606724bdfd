"""Temporary upload files a killed API process left behind are swept; live ones are kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

from api.uploads import sweep_stale_uploads


def make(path: Path, age_s: float) -> Path:
    path.write_bytes(b"x" * 10)
    then_s = time.time() - age_s
    os.utime(path, (then_s, then_s))
    return path


def test_stale_upload_files_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    stale = make(tmp_path / "upload-abc123", age_s=7200)
    live = make(tmp_path / "upload-def456", age_s=10)
    other = make(tmp_path / "notes.txt", age_s=7200)
    (tmp_path / "upload-dir").mkdir()
    assert sweep_stale_uploads(tmp_path, older_than_s=3600) == 1
    assert not stale.exists()
    assert live.exists() and other.exists() and (tmp_path / "upload-dir").is_dir()


def test_a_missing_upload_directory_sweeps_nothing(tmp_path: Path) -> None:
    assert sweep_stale_uploads(tmp_path / "absent", older_than_s=3600) == 0
