"""`oddasr transcribe`: upload files, show progress while they run, print or save transcripts."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TextIO

import requests
from tqdm import tqdm

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5
FORMAT_EXTENSIONS = {"txt": "txt", "spk": "txt", "srt": "srt", "vtt": "vtt", "json": "json", "srt-oddasr": "txt",
                     "text": "txt", "openai_json": "json", "verbose_json": "json"}


class ClientError(Exception):
    pass


#: What a command-line user can do about a 401 (the server's message names HTTP headers).
KEY_HINT = "pass a key with --api-key or the ODDASR_API_KEY environment variable"


def _error_text(response: requests.Response) -> str:
    try:
        text = str(response.json().get("error", response.text))
    except ValueError:
        text = response.text[:500]
    return f"{text}; {KEY_HINT}" if response.status_code == 401 else text


def auth_headers(api_key: str) -> dict[str, str]:
    """What every client command sends when a key is configured (`--api-key`, ODDASR_API_KEY)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def submit(http: requests.Session, server: str, path: Path, fields: dict[str, str], timeout_s: float) -> str:
    with path.open("rb") as audio:
        response = http.post(f"{server}/v1/jobs", files={"audio": (path.name, audio)}, data=fields,
                                 timeout=timeout_s)
    if response.status_code != 202:
        raise ClientError(f"{path}: the server refused it ({response.status_code}): {_error_text(response)}")
    return str(response.json()["id"])


def progress_bar(label: str, *, show: bool, file: TextIO | None = None) -> tqdm:
    """A bar reading `long.wav (running):  26%|███   |`. The status goes in the description:
    tqdm prefixes a postfix with ", ", which read as a stray comma after the bar."""
    return tqdm(total=100, desc=label, unit="%", disable=not show, file=file or sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar}|")


def _about_s(seconds: object) -> str:
    value = float(seconds)  # type: ignore[arg-type]
    return f"~{value:.0f} s" if value < 90 else f"~{value / 60:.0f} min"


def job_state_text(job: dict[str, object]) -> str:
    """`queued, 3 ahead, starts in ~12 s` / `running, done in ~8 s`: what the API knows of the
    job's place and time, in the words of the bar's description."""
    status = str(job["status"])
    parts = [status]
    if status == "queued":
        position = job.get("queue_position")
        if position is not None:
            parts.append("next in line" if position == 0 else f"{position} ahead")
        if job.get("estimated_start_s") is not None:
            parts.append(f"starts in {_about_s(job['estimated_start_s'])}")
    elif status == "running" and job.get("estimated_finish_s") is not None:
        parts.append(f"done in {_about_s(job['estimated_finish_s'])}")
    return ", ".join(parts)


def show_job(bar: tqdm, label: str, job: dict[str, object]) -> None:
    """Redraw the bar with the job's percentage, status, place in line and estimate. Each poll
    redraws: set without a refresh, tqdm drew the first 0 % and then nothing until the end."""
    status = str(job["status"])
    progress = 100.0 if status == "succeeded" else float(job.get("progress") or 0.0) * 100  # type: ignore[arg-type]
    bar.n = round(progress, 1)
    if not bar.disable:  # a disabled bar (no terminal) has no description to set
        bar.set_description_str(f"{label} ({job_state_text(job)})", refresh=False)
        bar.refresh()


def wait(http: requests.Session, server: str, job_id: str, label: str, timeout_s: float,
         show_progress: bool) -> dict[str, object]:
    deadline_s = time.monotonic() + timeout_s
    with progress_bar(label, show=show_progress) as bar:
        while True:
            response = http.get(f"{server}/v1/jobs/{job_id}", timeout=30)
            if response.status_code != 200:
                raise ClientError(f"{label}: cannot read job {job_id}: {_error_text(response)}")
            job = response.json()
            show_job(bar, label, job)
            if job["status"] in {"succeeded", "failed", "canceled"}:
                return job
            if time.monotonic() > deadline_s:
                raise ClientError(f"{label}: still {job['status']} after {timeout_s:.0f} s (job {job_id})")
            time.sleep(POLL_INTERVAL_S)


def untrusted_certificate_message(server: str, exc: Exception) -> str:
    """What to do when the TLS handshake fails, instead of "no server answers"."""
    reason = getattr(getattr(exc, "args", [None])[0], "reason", None) or exc
    return (f"{server} answered with a certificate this machine does not trust ({reason}): pass the CA that "
            "signed it with --ca-cert (a self-signed certificate is its own CA)")


def no_server_message(server: str) -> str:
    """What to do when nothing answers, instead of urllib3's "Max retries exceeded"."""
    return (f"no OddASR server answers at {server}: start one with `oddasr` (or `oddasr -c config.json`) "
            "on that machine, or point --server at a running one")


def transcribe_files(
    files: list[Path], server: str, fmt: str, fields: dict[str, str], output_dir: Path | None, timeout_s: float,
    api_key: str = "",
) -> int:
    """Returns the process exit code: 0 when every file was transcribed."""
    server = server.rstrip("/")
    http = requests.Session()
    http.headers.update(auth_headers(api_key))
    failures = 0
    show_progress = sys.stderr.isatty()
    for path in files:
        try:
            job_id = submit(http, server, path, {**fields, "output_format": fmt}, timeout_s)
            job = wait(http, server, job_id, path.name, timeout_s, show_progress)
            if job["status"] != "succeeded":
                raise ClientError(f"{path}: job {job_id} {job['status']}: {job.get('error')}")
            response = http.get(f"{server}/v1/jobs/{job_id}/transcript", params={"format": fmt}, timeout=60)
            if response.status_code != 200:
                raise ClientError(f"{path}: cannot fetch the transcript: {_error_text(response)}")
            text = response.content.decode("utf-8")
            if output_dir is None:
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
            else:
                output_dir.mkdir(parents=True, exist_ok=True)
                target = output_dir / f"{path.stem}.{FORMAT_EXTENSIONS.get(fmt, fmt)}"
                target.write_text(text, encoding="utf-8")
                sys.stderr.write(f"{path} -> {target}\n")
        except requests.exceptions.SSLError as exc:  # a ConnectionError too, but the server did answer
            failures += 1
            sys.stderr.write(f"error: {untrusted_certificate_message(server, exc)}\n")
            break
        except requests.ConnectionError:
            failures += 1
            sys.stderr.write(f"error: {no_server_message(server)}\n")
            break  # the next files would get the same answer
        except (ClientError, OSError, requests.RequestException) as exc:
            failures += 1
            sys.stderr.write(f"error: {exc}\n")
    return 1 if failures else 0
