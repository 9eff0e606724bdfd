"""Loaded (as `sitecustomize`) only by the processes of the test bed's skewed-clock hosts.

libfaketime moves the wall clock; with FAKETIME_DONT_FAKE_MONOTONIC=1 it leaves the monotonic
clock alone (faking it too makes every absolute monotonic wait, `threading.Event.wait`, hang
for the offset), but then its `clock_nanosleep(TIMER_ABSTIME)` wrapper answers EINVAL, and that
is how CPython's `time.sleep` sleeps. A sleep through `select()` (a relative timeout that
libfaketime passes through) takes its place. The clock the process reads stays skewed: that
is the point.
"""

import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline_s = time.monotonic() + seconds
    while (left_s := deadline_s - time.monotonic()) > 0:
        select.select([], [], [], left_s)


time.sleep = _sleep
