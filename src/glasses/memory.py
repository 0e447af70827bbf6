"""Resident memory of this process: the per-stage peaks a run reports, so that memory that grows
with the number of folds or sweep points shows up in the numbers."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

PROC = Path("/proc/self")


def reset_peak() -> bool:
    """Restart the kernel's peak-RSS counter (Linux); False where that is not possible, and the
    peak then counts from the process start."""
    try:
        (PROC / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """Highest resident memory since the last `reset_peak` (or the process start), in MiB."""
    try:
        for line in (PROC / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)
