"""`oddasr stream-worker`: dedicated processes that each hold a few live sessions at a time.

The parent only supervises: it starts `--processes` children and starts a child again when
it dies (a SIGKILLed child's slots are never handed out again; the new child registers new
ones). Each child loads its live models once, then offers `stream_sessions_per_worker` slots,
each served by a thread of its own that loops: heartbeat its slot, pop a session request from
its inbox, run the session, free the slot. A session stays on its slot's thread, so in its
process, for its whole life (its model state lives there). Sessions of one process decode in
parallel: onnxruntime and CTranslate2 release the GIL while they compute.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import redis

from shared import redis_keys
from shared.celery_factory import make_celery
from shared.config import Settings, get_settings
from shared.engines_catalog import file_engine
from shared.host_spread import LocalStorageWatch
from shared.logs import configure_logging
from shared.stream_messages import SessionRequest
from shared.stream_slots import (
    STATE_CLAIMED,
    STATE_IDLE,
    forget_slot,
    heartbeat_slot,
    new_worker_id,
    release_slot,
)

logger = logging.getLogger(__name__)

SLOT_HEARTBEAT_INTERVAL_S = 1.0
#: A child that fails on its own sooner than this after its start counts towards the crash loop.
QUICK_DEATH_S = 30.0
MAX_QUICK_DEATHS = 3


class StreamProcess:
    """What one stream worker process loads once and its slots share: the runtime (clients and
    the file engine), the live engines, the Celery sender and the capacity monitor."""

    def __init__(self, settings: Settings) -> None:
        from shared.errors import EngineError, NotSupportedError
        from worker.engines.registry import load_live_engines
        from worker.services.runtime import build_runtime
        from worker.streaming.capacity import CapacityMonitor

        self.settings = settings
        try:
            self.runtime = build_runtime(settings)
            self.engines = load_live_engines(settings, self.runtime.engine, self._partial_share)
        except (NotSupportedError, EngineError) as exc:  # a missing or broken model: say which, stop
            raise SystemExit(str(exc)) from exc
        # Only sends (webhook deliveries by task name); no connection until it does.
        self.celery = make_celery(settings, name="oddasr-stream-worker")
        self.stopping = threading.Event()
        self.slots = [StreamWorker(self) for _ in range(self._sessions_per_process(settings))]
        self.capacity = CapacityMonitor(self._running_lags)
        #: Warns when `storage_backend=local` while other hosts serve this deployment.
        self.storage_watch = LocalStorageWatch(settings, "stream worker")

    @staticmethod
    def _sessions_per_process(settings: Settings) -> int:
        """An engine whose models are not thread-safe (FunASR's) takes fewer sessions per
        process than configured: its descriptor says how many."""
        engine = file_engine(settings)
        limit = engine.max_live_sessions_per_process
        if limit is not None and settings.stream_sessions_per_worker > limit:
            logger.warning("the %s engine serves at most %d live session(s) per stream worker process "
                           "(stream_sessions_per_worker=%d is ignored): run more processes instead",
                           engine.name, limit, settings.stream_sessions_per_worker)
            return limit
        return settings.stream_sessions_per_worker

    def _partial_share(self) -> float:
        """The share of a core each running session's partials may use: this host's cores split
        over its stream worker processes, then over this process's sessions; between a half and
        one (a lone session decodes back to back). A share is a ceiling, rarely reached: partials
        are cheap early in a sentence. With a quarter as the floor, eight sessions on 2 cores used
        61 % of the machine and their first text p95 was 0.80 s; with a half, 76 % and 0.69 s
        (bench/streaming.py); admission still counts what they really use."""
        running = max(1, sum(slot.busy for slot in getattr(self, "slots", [])))
        cores_per_process = len(os.sched_getaffinity(0)) / max(1, self.settings.stream_workers)
        return min(1.0, max(0.5, cores_per_process / running))

    def _running_lags(self) -> list[float]:
        return [slot.lag_s() for slot in self.slots if slot.busy]

    def _store_parked_recordings(self) -> None:
        """Recordings storage could not take at their session's end wait on this disk: store
        them as storage comes back, and keep their jobs alive meanwhile (often enough that the
        sweep of silent sessions never takes them for dead)."""
        from worker.services.completion import FinishContext
        from worker.services.session_end import retry_unstored

        context = FinishContext.of(self.runtime, self.celery)
        period_s = min(self.settings.stream_recording_retry_interval_s, self.settings.stale_job_after_s / 4)
        while not self.stopping.wait(period_s):
            try:
                retry_unstored(context)
            except Exception:  # the next round tries again; this thread must outlive any outage
                logger.warning("could not retry the parked recordings", exc_info=True)

    def serve(self) -> None:
        threading.Thread(target=self._store_parked_recordings, name="parked-recordings", daemon=True).start()
        threads = [threading.Thread(target=slot.serve, name=f"stream-slot-{index}", daemon=True)
                   for index, slot in enumerate(self.slots)]
        for thread in threads:
            thread.start()
        logger.info("stream worker process %d ready: %d sessions at a time (%s, %s)", os.getpid(), len(self.slots),
                    self.engines.name, self.engines.model_name)
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=1.0)


class StreamWorker:
    """One slot of a stream worker process: one session at a time, on its own thread."""

    def __init__(self, process: StreamProcess) -> None:
        self.process = process
        self.settings = process.settings
        self.runtime = process.runtime
        self.stopping = process.stopping
        self.worker_id = new_worker_id()
        self._busy: tuple[str, int] | None = None  # (session id, fence) while a session runs
        self._runner: object | None = None
        #: Set when this slot's serving thread has ended: its heartbeat stops with it.
        self._served = threading.Event()

    @property
    def busy(self) -> bool:
        return self._busy is not None

    def lag_s(self) -> float:
        runner = self._runner
        return runner.lag.recent_lag_s() if runner is not None else 0.0  # type: ignore[attr-defined]

    def _beat(self) -> dict[str, object]:
        capacity = self.process.capacity.sample()
        if self._busy is None:
            return heartbeat_slot(self.runtime.redis, self.worker_id, state=STATE_IDLE, capacity=capacity)
        session_id, fence = self._busy
        return heartbeat_slot(self.runtime.redis, self.worker_id, state=STATE_CLAIMED, session_id=session_id,
                              fence=fence, capacity=capacity)

    def _heartbeat_loop(self) -> None:
        """Beats while this slot's serving thread lives: a slot whose thread is gone must stop
        looking alive, or it would be claimed into an inbox nobody reads."""
        while not self._served.wait(SLOT_HEARTBEAT_INTERVAL_S):
            try:
                self._beat()
                if self is self.process.slots[0]:  # one look per process, not per slot
                    self.process.storage_watch.check(self.runtime.redis, logger)
            except redis.RedisError:
                logger.warning("stream worker %s: Redis unreachable; retrying", self.worker_id)

    def serve(self) -> None:
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="slot-heartbeat", daemon=True)
        heartbeat.start()
        inbox = redis_keys.stream_worker_inbox(self.worker_id)
        logger.info("stream worker slot %s ready", self.worker_id)
        try:
            while not self.stopping.is_set():
                try:
                    self._serve_one(inbox)
                except redis.RedisError:
                    logger.warning("stream worker %s: Redis unreachable; retrying", self.worker_id)
                    self.stopping.wait(1.0)
                except Exception:  # a bad request or a broken disk must not leave a dead slot behind
                    logger.exception("stream worker %s: a session request failed; serving the next one",
                                     self.worker_id)
                    self.stopping.wait(1.0)
        finally:
            self._served.set()
            heartbeat.join(timeout=2 * SLOT_HEARTBEAT_INTERVAL_S)  # no beat may bring the slot back
            with contextlib.suppress(redis.RedisError):
                forget_slot(self.runtime.redis, self.worker_id)

    def _serve_one(self, inbox: str) -> None:
        self._beat()
        item = self.runtime.redis.blpop([inbox], timeout=1)
        if item is None:
            return
        request = SessionRequest.model_validate_json(item[1])
        try:
            slot = self._beat()
            # The slot's heartbeat time is Redis' clock, as the request's deadline is.
            if slot.get("fence") != request.fence or float(str(slot.get("heartbeat_s", 0))) > request.expires_at_s:
                logger.warning("stream worker %s: dropping a stale session request %s", self.worker_id,
                               request.session_id)
                release_slot(self.runtime.redis, self.worker_id, request.fence)
                return
        except Exception:
            with contextlib.suppress(redis.RedisError):
                release_slot(self.runtime.redis, self.worker_id, request.fence)
            raise
        self._run(request)

    def _run(self, request: SessionRequest) -> None:
        from worker.services.metrics import stream_session_ended, stream_session_started
        from worker.streaming.session_loop import SessionRunner

        self._busy = (request.session_id, request.fence)
        stream_session_started()
        try:
            runner = SessionRunner(self.runtime, self.process.engines, request, self.stopping,
                                   celery=self.process.celery)
            self._runner = runner
            runner.run()
        finally:
            stream_session_ended()
            self._runner = None
            self._busy = None
            self._release_after_session(request.fence)

    def _release_after_session(self, fence: int) -> None:
        """Free the slot for the next session, trying for up to 30 s while Redis is away; a
        stopping worker gives up at once (its `serve` removes the slot on the way out, and a
        slot it cannot remove goes stale by itself): waiting out the 30 s held a deploy's
        SIGTERM for that long whenever Redis was down."""
        for _attempt in range(30):
            try:
                release_slot(self.runtime.redis, self.worker_id, fence)
                return
            except redis.RedisError:
                if self.stopping.wait(1.0):
                    return


def run_child(settings: Settings) -> int:
    process = StreamProcess(settings)

    def _stop(_signum: int, _frame: object) -> None:
        process.stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    process.serve()
    return 0


#: How a child that was asked to stop ends (SIGTERM, SIGINT: exit 0, or the signal itself
#: where it came before the handler). SIGKILL is not among them: the kernel's OOM killer sends
#: it to a model too big for the host at every start, a failure to give up on.
_STOPPED_FROM_OUTSIDE = {0, -signal.SIGTERM, -signal.SIGINT}


def failed_at_start(returncode: int, lived_s: float) -> bool:
    """Whether a child's end counts towards giving up (MAX_QUICK_DEATHS): it failed on its own
    (an error exit, a crash, a SIGKILL) within QUICK_DEATH_S of its start, as a missing model,
    a broken install or a model the host has no memory for does every time. A child asked to
    stop is restarted without counting, however young: three deploys in a row within 30 s of
    each other made the supervisor give up and leave the host with no stream worker at all."""
    return lived_s < QUICK_DEATH_S and returncode not in _STOPPED_FROM_OUTSIDE


def supervise(processes: int, settings: Settings) -> int:
    """Keep `processes` children alive; stop them all on SIGTERM / SIGINT.

    The supervisor serves its children's metrics on its own port: they write them to the
    group's directory (prometheus_client's multiprocess mode), made before the first child."""
    from shared.cli.launcher import die_with_parent
    from shared.metrics.process_group import (
        end_process_group,
        mark_process_dead,
        serve_metrics_port,
        start_process_group,
    )

    metrics_dir = start_process_group(settings, "stream-worker")
    serve_metrics_port(settings.metrics_host, settings.stream_worker_metrics_port, "stream worker")

    stopping = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # Each child is told how many processes share the host: it splits the cores by them.
    argv = [sys.executable, "-m", "worker.streaming.main", "--child", "--processes", str(processes)]

    def start() -> tuple[subprocess.Popen[bytes], float]:
        return subprocess.Popen(argv, preexec_fn=die_with_parent), time.monotonic()  # noqa: PLW1509

    children = [start() for _ in range(processes)]
    quick_deaths = 0
    while not stopping.wait(0.2):
        for index, (child, started_s) in enumerate(children):
            if child.poll() is None:
                continue
            lived_s = time.monotonic() - started_s
            if failed_at_start(child.returncode, lived_s):
                quick_deaths += 1
            elif lived_s >= QUICK_DEATH_S:
                quick_deaths = 0
            if quick_deaths >= MAX_QUICK_DEATHS:
                logger.error("stream worker children keep dying at start; giving up")
                stopping.set()
                break
            logger.warning("stream worker child %d exited with %s after %.0f s; starting another", child.pid,
                           child.returncode, lived_s)
            mark_process_dead(child.pid)
            children[index] = start()
    for child, _ in children:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
    for child, _ in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
    end_process_group(metrics_dir)
    return 1 if quick_deaths >= MAX_QUICK_DEATHS else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oddasr stream-worker")
    parser.add_argument("--processes", type=int, default=None, help="stream worker processes (default: config)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    # faster-whisper logs every decode at INFO; a live session decodes twice a second.
    logging.getLogger("faster_whisper").setLevel(max(logging.WARNING, logging.getLogger().level))
    if args.child:
        if args.processes:
            settings = settings.model_copy(update={"stream_workers": args.processes})
        return run_child(settings)
    return supervise(args.processes or settings.stream_workers, settings)


if __name__ == "__main__":
    sys.exit(main())
