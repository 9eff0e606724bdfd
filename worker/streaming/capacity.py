"""What a stream worker process can still take, measured: the figures its slots advertise.

Admission counts cores, not sessions. Each process measures the CPU its sessions use (its own
CPU time over wall time, every thread included: onnxruntime's and CTranslate2's too), divides it
by the sessions it runs to learn what one session costs on this host with these models, and
watches whether every session keeps up with real time. The claim script (shared.stream_slots)
adds up the processes of a host and hands a slot out only while one more session fits; a
process with a session that fell behind takes none until it caught up. So a host with slower
cores, a heavier model (Whisper sessions cost several times a Moonshine one) or another
program eating its CPU takes fewer sessions, instead of accepting them and falling behind.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from shared.stream_slots import SlotCapacity

#: What a session is assumed to cost before this process has measured one (Moonshine tiny with
#: its partials measured 0.1-0.2 cores on this project's 2-core reference machine).
DEFAULT_SESSION_COST_CORES = 0.2
#: The measured cost of a session is never taken below this (a session that is mostly silence
#: costs little now, and may speak later).
MIN_SESSION_COST_CORES = 0.08
#: Smoothing of the load (per sample, about one a second) and of the per-session cost.
LOAD_SMOOTHING = 0.5
COST_SMOOTHING = 0.2
#: A session whose audio waits longer than this before it is processed is behind real time.
MAX_SESSION_LAG_S = 1.5
#: A lag measured longer ago than this no longer counts.
LAG_MEMORY_S = 5.0


class LagGauge:
    """How far behind one session runs: frames' waits before processing, clock-offset free.

    The API stamps each frame with its clock as it publishes it; the worker's clock may differ
    by any amount (another host), but by a constant one: the smallest difference seen is the
    offset plus the relay's delay, and anything above it is time the frame waited here.
    """

    def __init__(self) -> None:
        self._base_s: float | None = None
        self.lag_s = 0.0
        self._measured_at_s = 0.0

    def frame(self, sent_at_s: float, now_s: float | None = None) -> None:
        if sent_at_s <= 0:
            return
        offset_s = (time.time() if now_s is None else now_s) - sent_at_s
        self._base_s = offset_s if self._base_s is None else min(self._base_s, offset_s)
        self.lag_s = offset_s - self._base_s
        self._measured_at_s = time.monotonic()

    def recent_lag_s(self) -> float:
        return self.lag_s if time.monotonic() - self._measured_at_s <= LAG_MEMORY_S else 0.0


class CapacityMonitor:
    """One per stream worker process; `sample()` once a heartbeat."""

    def __init__(self, running_lags: Callable[[], list[float]], cores: float | None = None) -> None:
        self._running_lags = running_lags
        self.cores = float(cores or len(os.sched_getaffinity(0)) or 1)
        self.load_cores = 0.0
        self.session_cost_cores = DEFAULT_SESSION_COST_CORES
        self._lock = threading.Lock()
        self._last_cpu_s = time.process_time()
        self._last_wall_s = time.monotonic()

    def sample(self) -> SlotCapacity:
        with self._lock:
            now_cpu_s, now_wall_s = time.process_time(), time.monotonic()
            wall_s = now_wall_s - self._last_wall_s
            lags = self._running_lags()
            if wall_s >= 0.5:
                used = (now_cpu_s - self._last_cpu_s) / wall_s
                self._last_cpu_s, self._last_wall_s = now_cpu_s, now_wall_s
                self.load_cores += LOAD_SMOOTHING * (used - self.load_cores)
                if lags:
                    per_session = max(MIN_SESSION_COST_CORES, self.load_cores / len(lags))
                    self.session_cost_cores += COST_SMOOTHING * (per_session - self.session_cost_cores)
                else:
                    self.load_cores = used  # idle: no smoothing lag after the last session
            return SlotCapacity(cores=self.cores, load_cores=self.load_cores,
                                session_cost_cores=self.session_cost_cores,
                                admit=all(lag <= MAX_SESSION_LAG_S for lag in lags))
