"""`oddasr` on one machine: it starts Redis, migrations, API, workers and Flower as children,
serves a real transcript, and a Ctrl-C (SIGINT) stops every one of them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
import soundfile

from tests.support.servers import free_port
from tests.support.speech import REFERENCE_SENTENCES, synthesize
from tests.support.waiting import wait_until
from tests.support.ws_clients import funasr_session, oddasr_session

pytestmark = pytest.mark.integration


def test_oddasr_runs_everything_and_ctrl_c_leaves_no_process(tmp_path: Path, speech_dir: Path) -> None:
    api_port, flower_port, redis_port, ws_port, funasr_port = (free_port() for _ in range(5))
    config = tmp_path / "config.json"
    # The original OddASR format, plus our own keys for what it did not have.
    config.write_text(json.dumps({
        "HOST": "127.0.0.1", "PORT": api_port, "WS_PORT": ws_port, "asr_file_cfg": {"max_instance": 1},
        "asr_sentence_cfg": {"max_instance": 1}, "asr_stream_cfg": {"max_instance": 1}, "unknown_section": {"x": 1},
        "funasr_ws_port": funasr_port,
        "flower_port": flower_port, "embedded_redis_port": redis_port, "whisper_model": "tiny.en",
        "whisper_beam_size": 1,
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODDASR_")}
    env["ODDASR_DATA_DIR"] = str(tmp_path / "data")
    if "ODDASR_TEST_MODEL_CACHE" in os.environ:
        env["ODDASR_MODEL_CACHE_DIR"] = os.environ["ODDASR_TEST_MODEL_CACHE"]
    oddasr = shutil.which("oddasr", path=str(Path(sys.executable).parent)) or "oddasr"
    log = (tmp_path / "launcher.log").open("wb")
    launcher = subprocess.Popen([oddasr, "-c", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT)
    descendants: list[psutil.Process] = []
    try:
        deadline_s = time.monotonic() + 300  # every engine loads on the machine's cores at once
        ready = False
        while time.monotonic() < deadline_s and not ready:
            assert launcher.poll() is None, (tmp_path / "launcher.log").read_text()[-3000:]
            try:
                body = requests.get(f"http://127.0.0.1:{api_port}/readyz", timeout=5).json()
                ready = body["ready"] and body["file_queue_served"] and body["sentence_queue_served"] and \
                    body["stream_workers"]["idle"] >= 1
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.5)
        assert ready, (tmp_path / "launcher.log").read_text()[-3000:]
        # The terminal says once that everything is up, with the URLs; the children's banners
        # (Celery's, Redis' logo) are in their own log files, not in front of that line.
        said_deadline_s = time.monotonic() + 60
        while "OddASR is ready" not in (tmp_path / "launcher.log").read_text():
            assert time.monotonic() < said_deadline_s, (tmp_path / "launcher.log").read_text()[-3000:]
            time.sleep(0.3)
        terminal = (tmp_path / "launcher.log").read_text()
        assert terminal.count("OddASR is ready") == 1, terminal
        ready_text = next(line for line in terminal.splitlines() if "OddASR is ready" in line)
        for url in (f"http://127.0.0.1:{api_port}/", f"ws://127.0.0.1:{ws_port}/v1/asr",
                    f"ws://127.0.0.1:{funasr_port}/", f"http://127.0.0.1:{flower_port}/"):
            assert url in ready_text, ready_text
        assert "loaded engine" not in terminal and "Running mode" not in terminal, terminal[:3000]
        logs = tmp_path / "data" / "logs"
        assert "loaded engine" in (logs / "worker-file.log").read_text(errors="replace")
        assert "Ready to accept connections" in (logs / "redis.log").read_text(errors="replace")
        clip = synthesize(REFERENCE_SENTENCES[0], speech_dir / "launcher.wav")
        with clip.open("rb") as audio:
            response = requests.post(f"http://127.0.0.1:{api_port}/v1/asr", files={"audio": audio},
                                     data={"mode": "sentence"}, timeout=120)
        assert response.status_code == 200, response.text
        assert "weather" in response.json()["text"].lower() or len(response.json()["text"]) > 10
        # Live sessions in both protocols, at the clients' own pace, through the same processes.
        live = oddasr_session(f"ws://127.0.0.1:{ws_port}/v1/asr", clip)
        assert live.named("TranscriptionResultChanged") and live.close_code == 1000
        assert [m for m in live.named("SentenceEnd") if m["payload"]["result"] not in ("", "END")]
        samples, _ = soundfile.read(clip, dtype="int16")
        funasr = funasr_session(f"ws://127.0.0.1:{funasr_port}/", samples.tobytes(), mode="2pass")
        assert funasr.of_mode("2pass-online") and funasr.of_mode("2pass-offline")
        assert funasr.messages[-1].data.get("is_end") is True
        def flower_answers() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{flower_port}/healthcheck", timeout=5).status_code == 200
            except requests.RequestException:  # not listening yet, or too busy to answer in time
                return False

        wait_until(flower_answers, "flower to answer its health check", timeout_s=120, interval_s=0.5)
        # A crashed child is started again: kill the API's gunicorn master outright.
        gunicorn = next(p for p in psutil.Process(launcher.pid).children() if "gunicorn" in " ".join(p.cmdline()))
        os.killpg(gunicorn.pid, signal.SIGKILL)
        def api_answers() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{api_port}/healthz", timeout=5).status_code == 200
            except requests.RequestException:  # down, or still starting
                return False

        wait_until(api_answers, "the launcher to restart the API", timeout_s=120, interval_s=0.3)
        assert launcher.poll() is None
        descendants = psutil.Process(launcher.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in descendants)
        for expected in ("redis-server", "gunicorn", "celery", "flower", "worker.streaming.main",
                         "--queues webhooks --concurrency 50 --pool threads"):
            assert expected in names, names
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=120) == 0, (tmp_path / "launcher.log").read_text()[-3000:]

        def still_alive() -> list[psutil.Process]:
            alive = []
            for process in descendants:
                with contextlib.suppress(psutil.NoSuchProcess):
                    if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                        alive.append(process)
            return alive

        with contextlib.suppress(TimeoutError):  # the assertion below names what is left
            wait_until(lambda: not still_alive(), "every child to exit", timeout_s=30, interval_s=0.1)
        alive = still_alive()
        assert alive == [], [p.cmdline() for p in alive]
    finally:
        if launcher.poll() is None:
            launcher.kill()
        for process in descendants:
            if process.is_running():
                process.kill()


def test_a_child_that_keeps_dying_has_its_last_lines_on_the_terminal(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Its log is a file now: without its tail, the reason would be one `ls` away."""
    from shared.cli.launcher import MAX_RESTARTS, Launcher
    from shared.config import Settings

    launcher = Launcher(Settings(data_dir=tmp_path / "data", port=free_port()))
    launcher.spawn("doomed", [sys.executable, "-c", "import sys; print('the reason: no such model'); sys.exit(3)"])
    assert launcher.supervise() == 1
    err = capfd.readouterr().err
    assert err.count("the reason: no such model") >= MAX_RESTARTS, err
    assert "last lines of" in err and "doomed.log" in err, err
