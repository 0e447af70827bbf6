"""Cache entries that a crash cannot leave half-written and a damaged disk cannot pass off.

Every entry is written to a temporary file in its folder and renamed into place when complete,
with the SHA-256 of its bytes in a `.sha256` file beside it; a read checks both. So a killed run
leaves no entry under a final name, and whatever the file system lost anyway is recomputed by
the caller (with a `CacheWarning` naming the file) instead of failing every later run.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np


class CacheWarning(UserWarning):
    """A cache entry was damaged and is being recomputed; the message names the file."""


def warn_damaged(kind: str, path: Path, problem: str) -> None:
    warnings.warn(
        f"{kind} cache entry {path} is damaged ({problem}); recomputing it",
        CacheWarning,
        stacklevel=3,
    )


def _checksum_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.sha256")


def file_digest(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _verified(path: Path) -> str:
    """'' when the file matches the checksum beside it, else what is wrong."""
    try:
        recorded = _checksum_path(path).read_text().strip()
    except OSError:
        return "no checksum beside it"
    try:
        return "" if file_digest(path) == recorded else "checksum mismatch"
    except OSError as error:
        return f"unreadable: {error}"


def _write(path: Path, suffix: str, fill: Callable[[Path], None]) -> None:
    """`fill` writes the entry into a temporary file; its checksum and then the entry itself are
    renamed into place once complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, suffix=f"{suffix}.tmp")
    os.close(handle)
    temporary, checksum = Path(name), Path(f"{name}.sha256")
    try:
        fill(temporary)
        checksum.write_text(file_digest(temporary))
        os.replace(checksum, _checksum_path(path))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        checksum.unlink(missing_ok=True)
        raise


def store_array(
    path: Path, shape: tuple[int, ...], dtype: type, fill: Callable[[np.ndarray], None]
) -> None:
    """An `.npy` entry that `fill` writes batch by batch into a memory-mapped file, so an
    array larger than memory never has to be held whole."""

    def write(temporary: Path) -> None:
        out = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
        fill(out)
        out.flush()
        del out

    _write(path, ".npy", write)


def load_array(path: Path, shape: tuple[int, ...], dtype: type) -> tuple[np.ndarray | None, str]:
    """The entry, memory-mapped copy-on-write (never written back), if its header, shape and
    checksum are right; else None and what is wrong."""
    try:
        array = np.load(path, mmap_mode="c")
    except (OSError, ValueError, EOFError) as error:
        return None, f"unreadable: {error}"
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        return None, f"{array.dtype} {array.shape}, expected {np.dtype(dtype)} {shape}"
    problem = _verified(path)
    return (None, problem) if problem else (array, "")


def store_bytes(path: Path, data: bytes) -> None:
    _write(path, path.suffix, lambda temporary: temporary.write_bytes(data))


def load_bytes(path: Path) -> tuple[bytes | None, str]:
    """The entry's bytes if they match their checksum; else None and what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return None, f"unreadable: {error}"
    problem = _verified(path)
    return (None, problem) if problem else (data, "")
