"""`oddasr transcribe` over many inputs: a Kaldi/FunASR `wav.scp` list, directories, files.

Each input gets a key (the list's first column, else the file's name without extension) and
one output file named by it. A bounded number of jobs are in flight at once (each worker
thread submits, waits and fetches one input at a time), one progress bar counts the inputs,
and each input's outcome is printed as it comes. A failed input is reported and the rest go
on; `--resume` skips inputs whose output already exists, so a rerun after an interruption
finishes the list.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from shared.cli.client import (
    FORMAT_EXTENSIONS,
    ClientError,
    _error_text,
    auth_headers,
    no_server_message,
    submit,
    untrusted_certificate_message,
    wait,
)

#: Files a directory input contributes (what the server's decoders read).
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".webm", ".mp4"})
SCP_SUFFIX = ".scp"


@dataclass(frozen=True)
class BatchInput:
    key: str
    path: Path


class InputListError(ValueError):
    pass


def is_batch(paths: list[Path]) -> bool:
    """Lists and directories make a batch; plain files keep the one-by-one client (printed
    to stdout unless --output-dir), as before."""
    return any(p.is_dir() or p.suffix == SCP_SUFFIX for p in paths)


def read_scp(path: Path) -> list[BatchInput]:
    """`key path` lines (Kaldi's and FunASR's wav.scp); a relative path is read from the list's
    directory; blank lines and `#` comments are skipped."""
    inputs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, _, audio = text.partition(" ")
        audio = audio.strip()
        if not audio:
            raise InputListError(f"{path}:{number}: expected 'key path', got {text!r}")
        audio_path = Path(audio)
        inputs.append(BatchInput(key, audio_path if audio_path.is_absolute() else path.parent / audio_path))
    return inputs


def collect_inputs(paths: list[Path]) -> list[BatchInput]:
    """Every input in order; a key used twice is an error (two outputs would overwrite)."""
    inputs: list[BatchInput] = []
    for path in paths:
        if path.suffix == SCP_SUFFIX and path.is_file():
            inputs += read_scp(path)
        elif path.is_dir():
            inputs += [BatchInput(p.stem, p) for p in sorted(path.rglob("*"))
                       if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]
        else:
            inputs.append(BatchInput(path.stem, path))
    seen: dict[str, Path] = {}
    for item in inputs:
        if item.key in seen:
            raise InputListError(f"the key {item.key!r} names both {seen[item.key]} and {item.path}: "
                                 "give them different keys in a wav.scp")
        seen[item.key] = item.path
    return inputs


def run_batch(paths: list[Path], server: str, fmt: str, fields: dict[str, str], output_dir: Path,
              timeout_s: float, api_key: str = "", jobs_in_flight: int = 4, resume: bool = False) -> int:
    """Returns the exit code: 0 when every input has its output."""
    server = server.rstrip("/")
    try:
        inputs = collect_inputs(paths)
    except (InputListError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    output_dir.mkdir(parents=True, exist_ok=True)
    extension = FORMAT_EXTENSIONS.get(fmt, fmt)

    def target(item: BatchInput) -> Path:
        return output_dir / f"{item.key}.{extension}"

    todo = [item for item in inputs if not (resume and target(item).exists())]
    skipped = len(inputs) - len(todo)
    local = threading.local()
    unreachable = threading.Event()

    def transcribe_one(item: BatchInput) -> str:
        if unreachable.is_set():
            raise ClientError("skipped: the server did not answer")
        if not hasattr(local, "http"):
            local.http = requests.Session()
            local.http.headers.update(auth_headers(api_key))
        http: requests.Session = local.http
        try:
            job_id = submit(http, server, item.path, {**fields, "output_format": fmt}, timeout_s)
            job = wait(http, server, job_id, item.key, timeout_s, show_progress=False)
            if job["status"] != "succeeded":
                raise ClientError(f"job {job_id} {job['status']}: {job.get('error')}")
            response = http.get(f"{server}/v1/jobs/{job_id}/transcript", params={"format": fmt}, timeout=60)
            if response.status_code != 200:
                raise ClientError(f"cannot fetch the transcript: {_error_text(response)}")
        except requests.exceptions.SSLError as exc:  # a ConnectionError too, but the server did answer
            unreachable.set()
            raise ClientError(untrusted_certificate_message(server, exc)) from None
        except requests.ConnectionError:
            unreachable.set()
            raise ClientError(no_server_message(server)) from None
        # Written whole under a temporary name, then renamed: `--resume` never sees half a file.
        partial = target(item).with_suffix(target(item).suffix + ".part")
        partial.write_bytes(response.content)
        partial.replace(target(item))
        return job_id

    failures = 0
    show = sys.stderr.isatty()
    with tqdm(total=len(inputs), initial=skipped, desc="transcribing", unit="file", file=sys.stderr,
              disable=not show) as bar, ThreadPoolExecutor(max_workers=max(1, jobs_in_flight)) as pool:
        if skipped:
            bar.write(f"{skipped} of {len(inputs)} already have their output (--resume): skipped", file=sys.stderr)
        futures = {pool.submit(transcribe_one, item): item for item in todo}
        for future in as_completed(futures):
            item = futures[future]
            try:
                future.result()
                line = f"{item.key}: done -> {target(item)}"
            except (ClientError, OSError, requests.RequestException) as exc:
                failures += 1
                line = f"{item.key}: FAILED ({item.path}): {str(exc).removeprefix(f'{item.path}: ')}"
            bar.write(line, file=sys.stderr)
            bar.update(1)
    done = len(todo) - failures
    sys.stderr.write(f"{done} transcribed, {skipped} skipped, {failures} failed, of {len(inputs)} inputs\n")
    return 1 if failures else 0
