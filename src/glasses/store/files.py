"""File-system primitives of the dataset store: an inter-process lock, atomic writes, hashes."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from glasses.data.sources import DataSourceError
from glasses.store.errors import DatasetLockedError

_MAX_NAMED = 10


@contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[None]:
    """Exclusive flock on `path`, which names its holder while held.

    The kernel drops a flock when its process dies, so a killed holder leaves no stale lock.
    Raises `DatasetLockedError`, naming the holder, when `timeout` seconds pass.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _flock(fd, path, timeout)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {now()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield
    finally:
        os.ftruncate(fd, 0)
        os.close(fd)


def _flock(fd: int, path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = path.read_text(encoding="utf-8").strip() or "a process that is starting"
                raise DatasetLockedError(
                    f"another import is running (lock {path} held by {holder}); "
                    "try again when it has finished"
                ) from None
            time.sleep(0.05)


def write_atomic(target: Path, content: bytes, durable: bool) -> None:
    """Readers see the old file or the new one, never a part: write beside it, then rename.

    `durable` also fsyncs the file and its folder, for files that others refer to.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")  # the lock admits one writer
    with temporary.open("wb") as file:
        file.write(content)
        if durable:
            file.flush()
            os.fsync(file.fileno())
    os.replace(temporary, target)
    if durable:
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def sha256(path: Path) -> str:
    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as error:
        raise DataSourceError(f"cannot read {path} ({error})") from error


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise DataSourceError(f"cannot read {path} ({error})") from error


def names(paths: Iterable[str]) -> str:
    """The first few paths, for messages."""
    listed = list(paths)
    return ", ".join(listed[:_MAX_NAMED]) + (" …" if len(listed) > _MAX_NAMED else "")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
