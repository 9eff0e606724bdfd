"""The stream worker supervisor gives up on children that fail at every start, saying why,
instead of restarting them forever (its other half, replacing children asked to stop, is in
tests/test_streaming_faults.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import free_port

pytestmark = pytest.mark.integration


def test_children_that_fail_at_every_start_make_the_supervisor_give_up_saying_why(tmp_path: Path) -> None:
    env = {**os.environ, "ODDASR_DATA_DIR": str(tmp_path), "ODDASR_VAD_MODEL_DIR": str(tmp_path / "no-vad"),
           "ODDASR_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
           "ODDASR_STREAM_WORKER_METRICS_PORT": str(free_port())}
    result = subprocess.run([sys.executable, "-m", "worker.streaming.main", "--processes", "1"], env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "keep dying at start; giving up" in output
    # Each child says which model is missing, without a traceback to dig it out of.
    assert output.count(f"the VAD model directory {tmp_path / 'no-vad'} lacks config.yaml") >= 3, output
    assert "Traceback" not in output, output
