"""The `oddasr` command.

`oddasr` and `oddasr -c config.json` start the whole system as the original did; the
subcommands start one piece each, for containers, and `transcribe` is a client.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from shared.auth.exposure import api_exposure_problem, flower_exposure_problem
from shared.cli import commands, keys
from shared.cli.tls import ca_for, trust
from shared.config import CONFIG_FILE_ENV, Settings, load_settings, unused_config_keys_message
from shared.engines_catalog import file_engine
from shared.logs import configure_logging
from shared.render import RENDERERS

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oddasr", description="OddASR distributed speech transcription")
    parser.add_argument("-c", "--config", help="config file (the original OddASR config.json format works)")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="start everything on this machine (the default)")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="show every process's own output here (default: data_dir/logs/<process>.log)")
    api = sub.add_parser("api", help="start the HTTP API and the websocket ports (gunicorn, gevent)")
    api.add_argument("--role", choices=commands.API_ROLES, default="all",
                     help="all ports (default), only the HTTP port, or only the websocket ports (TLS)")
    worker = sub.add_parser("worker", help="start a Celery worker with its models preloaded")
    worker.add_argument("--queues", help="comma-separated queues (default: the file queue and sentence)")
    worker.add_argument("--concurrency", type=int, help="worker processes (default: file_worker_concurrency)")
    worker.add_argument("--pool", choices=["prefork", "solo"], help="solo for GPU workers (default by config)")
    worker.add_argument("--name", default="worker", help="node name prefix")
    worker.add_argument("--metrics-port", type=int, help="this node's metrics port (default: worker_metrics_port)")
    webhooks = sub.add_parser("webhook-worker", help="start the node that sends webhooks (threads, no models)")
    webhooks.add_argument("--metrics-port", type=int, help="this node's metrics port (default: worker_metrics_port)")
    stream = sub.add_parser("stream-worker", help="start the stream worker processes (one live session each)")
    stream.add_argument("--processes", type=int, help="processes (default: stream_workers)")
    sub.add_parser("flower", help="start the Flower dashboard")
    sub.add_parser("migrate", help="apply database migrations")
    keys.add_parser(sub)
    models = sub.add_parser("models", help="download the configured models, or verify that they load")
    models.add_argument("action", choices=["download", "verify"])
    models.add_argument("--json", action="store_true")
    transcribe = sub.add_parser("transcribe", help="transcribe files, directories or wav.scp lists through a server")
    transcribe.add_argument("files", nargs="+", type=Path,
                            help="audio files, directories of them, or wav.scp lists ('key path' lines)")
    transcribe.add_argument("--jobs", type=int, default=4, help="jobs in flight at once for many inputs (4)")
    transcribe.add_argument("--resume", action="store_true", help="skip inputs whose output file exists")
    transcribe.add_argument("--format", default="txt", choices=list(RENDERERS),
                            help=f"the transcript's format: {', '.join(RENDERERS)} (txt)")
    transcribe.add_argument("--server", default=None, help="server URL (default: this config's host and port)")
    transcribe.add_argument("--ca-cert", help="the CA that signed an https server's certificate (default: the "
                                              "system's; this config's own API: ssl_cert_path)")
    transcribe.add_argument("--output-dir", type=Path, help="save transcripts here instead of printing them")
    transcribe.add_argument("--mode", default="file", choices=["file", "sentence"])
    transcribe.add_argument("--language")
    transcribe.add_argument("--hotwords")
    transcribe.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for each file")
    transcribe.add_argument("--api-key", help="the key to send (default: the api_key setting, ODDASR_API_KEY)")
    stream = sub.add_parser("stream", help="stream a recording at real-time pace; print partials and finals")
    stream_source = stream.add_mutually_exclusive_group(required=True)
    stream_source.add_argument("file", type=Path, nargs="?", help="a recording in any format the server takes")
    stream_source.add_argument("--mic", action="store_true", help="the default microphone, until Ctrl-C")
    stream.add_argument("--server", default=None, help="server URL (default: this config's host and port)")
    stream.add_argument("--ca-cert", help="the CA that signed a wss server's certificate (default: the system's; "
                                          "this config's own API: ssl_cert_path)")
    health = sub.add_parser("health", help="exit 0 when this config's API answers ready (container health checks)")
    health.add_argument("--server", default=None, help="server URL (default: this config's host and port)")
    health.add_argument("--ca-cert", help="the CA to check the certificate against (loopback: not checked)")
    health.add_argument("--live", action="store_true", help="only that the API answers (/healthz), not /readyz")
    stream.add_argument("--language")
    stream.add_argument("--hotwords", help="space-separated")
    stream.add_argument("--speed", type=float, default=1.0, help="times real time (default 1.0)")
    stream.add_argument("--speakers", action="store_true",
                        help="name the speaker of every sentence (an enrolled voice of the key, else Speaker N)")
    stream.add_argument("--api-key", help="the key to send (default: the api_key setting, ODDASR_API_KEY)")
    return parser


def _exec(argv: list[str], settings: Settings) -> int:
    """Replace this process with `argv`, so signals reach it directly in a container."""
    os.environ.update(settings.as_child_environment())
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached


def _model_problem(settings: Settings) -> str | None:
    """A model this machine cannot load, said before any process starts to load it."""
    return file_engine(settings).settings_problem(settings)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.config:
        os.environ[CONFIG_FILE_ENV] = str(Path(args.config).resolve())
    try:
        settings = load_settings(args.config)
    except ValueError as exc:
        sys.stderr.writelines(f"oddasr: {line}\n" for line in str(exc).splitlines())
        return 2
    configure_logging(settings.log_level)
    if unused := unused_config_keys_message(settings):
        logger.warning("%s", unused)
    command = args.command or "run"
    problems = {"run": [api_exposure_problem(settings), _model_problem(settings)]
                + ([flower_exposure_problem(settings)] if settings.enable_flower else []),
                "api": [api_exposure_problem(settings)], "flower": [flower_exposure_problem(settings)],
                "worker": [_model_problem(settings)], "stream-worker": [_model_problem(settings)]}
    for problem in problems.get(command, []):
        if problem:
            sys.stderr.write(f"oddasr: {problem}\n")
            return 2
    if command == "keys":
        return keys.run_keys(args, settings)
    if command == "run":
        from shared.cli.launcher import run_all

        return run_all(settings, verbose=getattr(args, "verbose", False))
    if command == "api":
        return _exec(commands.api_argv(settings, args.role), settings)
    if command == "stream-worker":
        return _exec(commands.stream_worker_argv(settings, args.processes or settings.stream_workers), settings)
    if command == "worker":
        queues = args.queues.split(",") if args.queues else [settings.file_queue, "sentence"]
        concurrency = args.concurrency or settings.file_worker_concurrency
        pool = args.pool or commands.default_worker_pool(settings)
        return _exec(commands.worker_argv(settings, queues, concurrency, pool, args.name, args.metrics_port),
                     settings)
    if command == "webhook-worker":
        return _exec(commands.webhook_worker_argv(settings, args.metrics_port), settings)
    if command == "flower":
        return _exec(commands.flower_argv(settings), settings)
    if command == "migrate":
        from shared.db.migrate import upgrade_to_head

        upgrade_to_head(settings.database_url)
        return 0
    if command == "models":
        # Model handling is worker code; run it as its own process so this CLI never imports it.
        argv = [sys.executable, "-m", "worker.model_admin", args.action, *(["--json"] if args.json else [])]
        return _exec(argv, settings)
    if command == "transcribe":
        from shared.cli.client import transcribe_files

        fields = {"mode": args.mode}
        if args.language:
            fields["language"] = args.language
        if args.hotwords:
            fields["hotwords"] = args.hotwords
        server = args.server or settings.api_base_url
        trust(ca_for(settings, server, args.ca_cert))
        from shared.cli.batch import is_batch, run_batch

        if is_batch(args.files) or args.resume:
            if args.output_dir is None:
                sys.stderr.write("oddasr: many inputs write one output each: give --output-dir\n")
                return 2
            return run_batch(args.files, server, args.format, fields, args.output_dir, args.timeout,
                             args.api_key or settings.api_key, jobs_in_flight=args.jobs, resume=args.resume)
        return transcribe_files(args.files, server, args.format, fields, args.output_dir, args.timeout,
                                args.api_key or settings.api_key)
    if command == "stream":
        from shared.cli.stream_client import run_stream

        if args.speed <= 0:
            sys.stderr.write("oddasr: --speed must be more than 0\n")
            return 2
        server = args.server or settings.api_base_url
        trust(ca_for(settings, server, args.ca_cert))
        return run_stream(None if args.mic else args.file, server, language=args.language,
                          hotwords=(args.hotwords or "").split(),
                          api_key=args.api_key or settings.api_key, speed=args.speed, speakers=args.speakers)
    if command == "health":
        from shared.cli.health import check_ready

        return check_ready(args.server or settings.api_base_url, args.ca_cert or "", live_only=args.live)
    return 2


if __name__ == "__main__":
    sys.exit(main())
