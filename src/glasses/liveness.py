"""Whether a tracked run that still says RUNNING has anyone left to finish it.

A run records the process that owns it (host, pid and the process's start time, so a recycled
pid is not mistaken for the owner). On the same host the answer is exact; from another host
only age can tell, so a run older than the limit counts as abandoned there. Whatever the host,
a run whose parent run has ended is abandoned: nothing waits for it any more (the Dask worker
that ran it died, and its task ran again elsewhere).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str  # the process's start time in clock ticks since boot; "" where unknown


def _start_ticks(pid: int) -> str:
    """Field 22 of /proc/PID/stat (Linux); "" elsewhere or when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def this_process() -> Owner:
    pid = os.getpid()
    return Owner(socket.gethostname(), pid, _start_ticks(pid))


def is_running(owner: Owner) -> bool:
    """The owner process exists on this host, and is the same process (not a recycled pid)."""
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    return not owner.started or _start_ticks(owner.pid) in ("", owner.started)


def abandoned_because(
    owner: Owner | None, age_hours: float, limit_hours: float, parent_ended: str | None = None
) -> str | None:
    """Why a RUNNING run can never finish, or None while it may still be alive.
    `parent_ended`: the status of its parent run once that has ended."""
    if parent_ended is not None:
        where = f" on {owner.host}" if owner else ""
        return f"its parent run ended ({parent_ended}) without it: its process{where} was lost"
    here = socket.gethostname()
    if owner is not None and owner.host == here:
        if is_running(owner):
            return None
        return f"its process {owner.pid} on {here} is gone (killed or crashed)"
    if age_hours > limit_hours:
        where = f"on {owner.host}" if owner else "by an unknown process"
        return f"started {age_hours:.1f} h ago {where}, more than runtime.abandoned_after_hours"
    return None
