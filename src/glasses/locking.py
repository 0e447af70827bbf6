"""One process at a time: an inter-process lock on a file, for whatever must not run twice at
once (a dataset import, creating a tracking store, migrating a server's database)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path


class LockTimeout(RuntimeError):
    """The lock stayed held for the whole timeout; the message names its holder."""


def _timed_out(path: Path, holder: str) -> Exception:
    return LockTimeout(f"{path} is held by {holder}; try again when it has finished")


@contextmanager
def file_lock(
    path: Path, timeout: float, busy: Callable[[Path, str], Exception] = _timed_out
) -> Iterator[None]:
    """Exclusive flock on `path`, which names its holder while held.

    The kernel drops a flock when its process dies, so a killed holder leaves no stale lock.
    Raises `busy(path, holder)` (a `LockTimeout` by default) when `timeout` seconds pass.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _flock(fd, path, timeout, busy)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {datetime.now(UTC).isoformat()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield
    finally:
        os.ftruncate(fd, 0)
        os.close(fd)


def _flock(fd: int, path: Path, timeout: float, busy: Callable[[Path, str], Exception]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = path.read_text(encoding="utf-8").strip() or "a process that is starting"
                raise busy(path, holder) from None
            time.sleep(0.05)
