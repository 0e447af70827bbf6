"""Cache entries that a crash cannot leave half-written and a damaged disk cannot pass off.

Every entry is written to a temporary file in its folder and renamed into place when complete,
with the SHA-256 of its bytes in a `.sha256` file beside it; a read checks both. So a killed run
leaves no entry under a final name, and whatever the file system lost anyway is recomputed by
the caller (with a `CacheWarning` naming the file) instead of failing every later run.

Entries are written by plain buffered writes, after a check that the disk has room: a full disk
is then a `CacheFull` error that names the folder and the sizes, where writing through a memory
map would kill the process (SIGBUS) with no message and nothing marked failed. Reading stays
memory-mapped.
"""

from __future__ import annotations

import errno
import hashlib
import io
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)  # a write that fails for want of room


class CacheWarning(UserWarning):
    """A cache entry was damaged and is being recomputed; the message names the file."""


class CacheFull(RuntimeError):
    """The cache folder's disk has no room for an entry; the message says how much it needs."""


def _full(folder: Path, needed: int) -> CacheFull:
    free = shutil.disk_usage(folder).free
    return CacheFull(
        f"cache folder {folder} has {free / 1e6:.1f} MB free, needs {needed / 1e6:.1f} MB; "
        "free space or set GLASSES_CACHE_DIR"
    )


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


Write = Callable[[bytes], None]


def _write(path: Path, size: int, fill: Callable[[Write], None]) -> None:
    """`fill` passes the entry's `size` bytes, in pieces, to the function it is given; they go
    to a temporary file, hashed on the way, renamed into place with their checksum when
    complete. Refused up front when the disk has no room; a write that runs out of room anyway
    (another writer took it) ends the same way, the temporary file removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(path.parent).free < size:
        raise _full(path.parent, size)
    try:
        _write_atomically(path, size, fill)
    except OSError as error:
        if error.errno not in _NO_ROOM:
            raise
        raise _full(path.parent, size) from error


def _write_atomically(path: Path, size: int, fill: Callable[[Write], None]) -> None:
    handle, name = tempfile.mkstemp(dir=path.parent, suffix=f"{path.suffix}.tmp")
    temporary, checksum = Path(name), Path(f"{name}.sha256")
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as stream:

            def write(data: bytes) -> None:
                digest.update(data)
                stream.write(data)

            fill(write)
            written = stream.tell()
        if written != size:
            raise ValueError(f"{path}: {written} bytes written, {size} expected")
        checksum.write_text(digest.hexdigest())
        os.replace(checksum, _checksum_path(path))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        checksum.unlink(missing_ok=True)
        raise


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header,
        {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape},
    )
    return header.getvalue()


def store_array(
    path: Path, shape: tuple[int, ...], dtype: type, pieces: Iterable[np.ndarray]
) -> None:
    """An `.npy` entry of `pieces`, arrays whose values in C order, one after the other, make up
    the entry (batches of rows; an array itself gives its rows), so an array larger than memory
    never has to be held whole."""
    dtype = np.dtype(dtype)
    header = _npy_header(shape, dtype)

    def fill(write: Write) -> None:
        write(header)
        for piece in pieces:
            write(np.ascontiguousarray(piece, dtype=dtype).tobytes())

    _write(path, len(header) + math.prod(shape) * dtype.itemsize, fill)


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
    _write(path, len(data), lambda write: write(data))


def load_bytes(path: Path) -> tuple[bytes | None, str]:
    """The entry's bytes if they match their checksum; else None and what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return None, f"unreadable: {error}"
    problem = _verified(path)
    return (None, problem) if problem else (data, "")
