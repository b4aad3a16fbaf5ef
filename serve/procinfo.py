"""Facts about this process that the service reports: seconds since it started, and its peak resident memory.

Linux's /proc gives the process start time in clock ticks after boot (10 ms resolution), so "cold start"
covers the interpreter start and the imports, not only the model load; elsewhere
``seconds_since_process_start`` returns None rather than a guess.
"""

from __future__ import annotations

import os
import resource
import sys
import time


def seconds_since_process_start() -> float | None:
    """Wall seconds since this process was started (exec), or None where /proc is not available."""
    try:
        with open("/proc/self/stat", "rb") as f:
            start_ticks = int(f.read().rsplit(b")", 1)[1].split()[19])  # field 22 of proc(5): clock ticks after boot
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, IndexError, ValueError, AttributeError):
        return None
    return since_boot - start_ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_bytes() -> int:
    """The peak resident set size of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def pin_to_cpus(n: int) -> list[int]:
    """Restrict this process (and the threads it starts from now on) to its first ``n`` usable CPUs.

    Emulates a device with ``n`` cores: ONNX Runtime and the thread pools size themselves from the affinity
    mask. Raises ValueError when fewer than ``n`` CPUs are usable here.
    """
    usable = sorted(os.sched_getaffinity(0))
    if not 1 <= n <= len(usable):
        raise ValueError(f"cannot pin to {n} CPUs: {len(usable)} are usable here ({usable})")
    chosen = usable[:n]
    os.sched_setaffinity(0, chosen)
    return chosen
