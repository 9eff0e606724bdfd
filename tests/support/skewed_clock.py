"""A process whose wall clock is minutes off: libfaketime preloaded with a relative offset.

Not through Debian's `faketime` wrapper: the wrapper creates a POSIX semaphore and a shared
memory segment named after its own PID for every process it starts, and leaves both behind when
that process is killed (the cluster tests kill hosts on purpose). A later wrapper that draws a
recycled PID then fails before starting anything ("faketime: sem_open: File exists"): a test
failed that way on a machine with 188 such leftovers. The library alone needs neither: a
relative offset is all these tests use.
"""

from __future__ import annotations

import glob
import os

#: Where Debian's `libfaketime` package puts the library (one directory per architecture).
LIBFAKETIME_GLOB = "/usr/lib/*/faketime/libfaketime.so.1"


def libfaketime_path() -> str | None:
    """The installed libfaketime, or None where it is not installed."""
    found = sorted(glob.glob(LIBFAKETIME_GLOB))
    return found[0] if found else None


def skewed_clock_env(offset_s: int, env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) for a child whose wall clock runs `offset_s` off; its
    own children inherit the offset."""
    library = libfaketime_path()
    if library is None:
        raise RuntimeError("libfaketime is not installed (Debian: apt-get install faketime)")
    skewed = dict(os.environ if env is None else env)
    preloaded = skewed.get("LD_PRELOAD", "")
    skewed["LD_PRELOAD"] = f"{library} {preloaded}".strip()
    skewed["FAKETIME"] = f"{offset_s:+d}"
    return skewed
