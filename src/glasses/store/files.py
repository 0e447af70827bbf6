"""File-system primitives of the dataset store: atomic writes, hashes (its lock is
`glasses.locking`)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from glasses.data.sources import DataSourceError

_MAX_NAMED = 10


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
