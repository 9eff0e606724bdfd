"""The `oddasr transcribe` client's own output: the progress line and the answer when no
server runs."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import requests

from shared.cli import main as cli_main
from shared.cli.client import _error_text, progress_bar, show_job, transcribe_files
from shared.cli.stream_client import summary_line
from tests.support.servers import free_port


def drawn_lines(out: io.StringIO) -> list[str]:
    return [line for line in out.getvalue().replace("\r", "\n").splitlines() if line.strip()]


def test_the_progress_line_shows_the_status_without_stray_punctuation() -> None:
    out = io.StringIO()
    with progress_bar("long.wav", show=True, file=out) as bar:
        show_job(bar, "long.wav", {"status": "running", "progress": 0.26})
        line = drawn_lines(out)[-1]
    with progress_bar("quiet.wav", show=False) as hidden:  # no terminal: nothing drawn, nothing fails
        show_job(hidden, "quiet.wav", {"status": "running", "progress": 0.5})
    assert "26%" in line and "running" in line, line
    assert ", running" not in line and "| ," not in line, line


def test_every_poll_redraws_the_place_in_line_the_percentage_and_the_estimate() -> None:
    """The bar once drew 0 % and then nothing until 100 % (its values were set, never drawn)."""
    out = io.StringIO()
    polls = [{"status": "queued", "progress": 0.0, "queue_position": 2, "estimated_start_s": 12.4},
             {"status": "queued", "progress": 0.0, "queue_position": 0, "estimated_start_s": 1.0},
             {"status": "running", "progress": 0.46, "estimated_finish_s": 20.2},
             {"status": "running", "progress": 0.84, "estimated_finish_s": 130.0}]
    drawn = []
    with progress_bar("long180.wav", show=True, file=out) as bar:
        for job in polls:
            show_job(bar, "long180.wav", job)
            drawn.append(drawn_lines(out)[-1])
    assert "queued, 2 ahead, starts in ~12 s" in drawn[0] and "0%" in drawn[0], drawn
    assert "queued, next in line" in drawn[1], drawn
    assert "46%" in drawn[2] and "running, done in ~20 s" in drawn[2], drawn
    assert "84%" in drawn[3] and "done in ~2 min" in drawn[3], drawn


def test_no_server_at_the_url_is_said_in_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF")
    server = f"http://127.0.0.1:{free_port()}"
    assert transcribe_files([clip], server, "txt", {}, None, 10.0) == 1
    err = capsys.readouterr().err
    assert f"no OddASR server answers at {server}" in err, err
    assert "oddasr" in err.split("answers at", 1)[1]  # how to start one
    assert "Max retries" not in err and "Errno" not in err, err


def test_stream_mic_without_a_microphone_says_so_before_connecting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No PortAudio or no input device here: a clear error, and no session is opened."""
    import socket
    import subprocess
    import sys

    with socket.socket() as listener:  # a "server" that would see any connection attempt
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "shared.cli.main", "stream", "--mic", "--server",
                               f"http://127.0.0.1:{port}"], capture_output=True, text=True, timeout=60, check=False)
        try:
            listener.accept()
            connected = True
        except TimeoutError:
            connected = False
    # This machine has no PortAudio (or no input device): one of the two reasons, in words,
    # and no traceback; the exit code says it failed; no connection was attempted.
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert re.search(r"no microphone support here \(|cannot open the default microphone: ", done.stderr), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert not connected, "a session was opened before the microphone"


def test_a_missing_key_tells_a_command_line_user_the_flag_and_the_variable() -> None:
    refused = requests.Response()
    refused.status_code = 401
    refused._content = b'{"error": "this server needs an API key: send it as \'Authorization: Bearer <key>\'"}'
    text = _error_text(refused)
    assert "--api-key" in text and "ODDASR_API_KEY" in text, text


def test_the_stream_summary_counts_one_sentence_in_the_singular() -> None:
    one = summary_line({"job_id": "j1", "duration_s": 3.0, "finals": 1}, "http://127.0.0.1:9002/")
    assert "1 sentence;" in one and "sentences" not in one, one
    assert "2 sentences;" in summary_line({"job_id": "j1", "duration_s": 3.0, "finals": 2}, "http://x")


def test_keys_create_prints_the_key_and_no_migration_chatter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ODDASR_DATA_DIR", str(tmp_path / "data"))
    assert cli_main.main(["keys", "create", "--name", "team-a"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("oddasr_sk_"), captured.out
    assert "alembic" not in captured.err and "migration" not in captured.err, captured.err


def test_transcribe_refuses_an_unknown_format_before_sending_and_lists_every_format(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main.main(["transcribe", "a.wav", "--format", "pdf"])
    err = capsys.readouterr().err
    assert "verbose_json" in err and "srt-oddasr" in err, err
