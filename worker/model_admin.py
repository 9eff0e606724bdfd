"""`oddasr models download|verify`: put the configured models in place, and prove they load.

Run in worker images at build time (download) and start-up checks (verify). The `oddasr`
command starts this as `python -m worker.model_admin`, so the CLI never imports worker code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from shared.config import Settings, get_settings
from shared.logs import configure_logging
from worker.engines.registry import FILE_ENGINES, file_engine_entry, load_engine

logger = logging.getLogger(__name__)


@dataclass
class ModelReport:
    role: str
    name: str
    path: str
    load_s: float
    ok: bool
    detail: str = ""


def download(settings: Settings) -> int:
    """Fetch every configured hub model (FunASR's) into funasr_model_dir (needs a reachable hub),
    whichever engine is configured: an image may serve either."""
    target = Path(settings.funasr_model_dir or Path(settings.data_dir) / "funasr-models")
    failures = 0
    hub_models = [item for entry in FILE_ENGINES.values() for item in entry.hub_models(settings).items()]
    for role, name in hub_models:
        if Path(name).is_dir():
            sys.stdout.write(f"{role}: {name} is a local directory; nothing to download\n")
            continue
        try:
            from modelscope.hub.snapshot_download import snapshot_download

            path = snapshot_download(name, local_dir=str(target / name))
            sys.stdout.write(f"{role}: {name} -> {path}\n")
        except Exception as exc:  # no hub, unknown id, disk full: report each, go on with the rest
            failures += 1
            sys.stdout.write(f"{role}: {name} FAILED: {type(exc).__name__}: {exc}\n")
    if note := file_engine_entry(settings).download_note:
        sys.stdout.write(f"{note}\n")
    return 1 if failures else 0


def _timed(role: str, name: str, load) -> ModelReport:  # type: ignore[no-untyped-def]
    started_s = time.monotonic()
    try:
        path = load()
    except Exception as exc:  # verification reports every failure instead of stopping at the first
        return ModelReport(role, name, "", time.monotonic() - started_s, False, f"{type(exc).__name__}: {exc}")
    return ModelReport(role, name, str(path), time.monotonic() - started_s, True)


def verify(settings: Settings) -> list[ModelReport]:
    """Resolve every configured model and load the engine once, timing each step."""
    models = file_engine_entry(settings).model_files(settings)
    reports = [_timed(model.role, model.name, model.resolve) for model in models]
    engine_holder: list[object] = []
    reports.append(_timed("engine", settings.engine,
                          lambda: engine_holder.append(load_engine(settings)) or f"{settings.engine} loaded"))
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oddasr models")
    parser.add_argument("action", choices=["download", "verify"])
    parser.add_argument("--json", action="store_true", help="print the verification report as JSON")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging("WARNING")
    if args.action == "download":
        return download(settings)
    # Model libraries print banners on import; keep stdout for the report alone.
    with contextlib.redirect_stdout(sys.stderr):
        reports = verify(settings)
    if args.json:
        sys.stdout.write(json.dumps([asdict(r) for r in reports], indent=2) + "\n")
    else:
        for report in reports:
            status = "ok" if report.ok else "FAILED"
            sys.stdout.write(f"{report.role:8} {status:6} {report.load_s:6.2f} s  {report.name}  "
                             f"{report.path or report.detail}\n")
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
