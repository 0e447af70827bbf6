"""Scattering coefficients, computed once per image set and cached on disk.

The filters are fixed wavelets, so an image's coefficients never change: every fold, every epoch
and every later run on the same pixels (same data, size, J and L) reuses them. The cache key is a
hash of the decoded pixels themselves, so a changed image can never hit a stale entry. Each entry
has the SHA-256 of its file beside it and is checked on every read: a damaged one (truncated,
altered, unreadable) is recomputed and replaced, with a `CacheWarning` naming the file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from glasses.models.scatnet import coefficient_count, scattering_transform

CACHE_VERSION = "3"  # 3: .npy (memory-mapped on read) with a .sha256 beside it


class CacheWarning(UserWarning):
    """A cache entry was damaged and is being recomputed; the message names the file."""


@dataclass
class CachedCoefficients:
    coefficients: torch.Tensor  # float32, N x 3 x K x side x side; memory-mapped from `path`
    path: Path
    hit: bool


def _compute_into(
    out: np.ndarray, pixels: np.ndarray, J: int, L: int, batch_size: int, device: str
) -> None:
    pixels = np.ascontiguousarray(pixels)  # kymatio refuses strided tensors
    transform = scattering_transform(J, L, pixels.shape[-1]).to(device)
    with torch.no_grad():
        for start in range(0, len(pixels), batch_size):
            batch = torch.from_numpy(pixels[start : start + batch_size]).to(device).float() / 255
            out[start : start + batch_size] = transform(batch).cpu().numpy()


def _shape(pixels: np.ndarray, J: int, L: int) -> tuple[int, ...]:
    n, channels, side = len(pixels), pixels.shape[1], pixels.shape[-1] // 2**J
    return (n, channels, coefficient_count(J, L), side, side)


def compute_coefficients(
    pixels: np.ndarray, J: int, L: int, batch_size: int = 64, device: str = "cpu"
) -> torch.Tensor:
    """Coefficients of uint8 N x 3 x S x S images scaled to [0, 1], as the models see them."""
    out = np.empty(_shape(pixels, J, L), dtype=np.float32)
    _compute_into(out, pixels, J, L, batch_size, device)
    return torch.from_numpy(out)


def cache_key(pixels: np.ndarray, J: int, L: int) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(pixels).data)
    digest.update(f"J={J};L={L};shape={pixels.shape};v={CACHE_VERSION}".encode())
    return digest.hexdigest()[:24]


def cached_coefficients(
    pixels: np.ndarray, J: int, L: int, cache_dir: Path, device: str = "cpu"
) -> CachedCoefficients:
    """The coefficients for these pixels, memory-mapped from the cache, computing and storing
    them on a miss or when the stored entry fails its checks.

    Memory-mapped, so a run holds only the pages it reads (the `paper` cache is about 5 GB) and
    concurrent readers share them. Computed batch by batch straight into a temporary file that is
    renamed when complete, so a killed run never leaves a truncated entry under the final name;
    the checks (header, shape, checksum of the file) catch what the file system lost anyway.
    """
    path = cache_dir / "scattering" / f"{cache_key(pixels, J, L)}.npy"
    expected = _shape(pixels, J, L)
    if path.exists():
        stored, problem = _load(path, expected)
        if stored is not None:
            return CachedCoefficients(torch.from_numpy(stored), path, hit=True)
        warnings.warn(
            f"scattering cache entry {path} is damaged ({problem}); recomputing it",
            CacheWarning,
            stacklevel=2,
        )
    _store(path, expected, lambda out: _compute_into(out, pixels, J, L, 64, device))
    stored, problem = _load(path, expected)
    assert stored is not None, problem
    return CachedCoefficients(torch.from_numpy(stored), path, hit=False)


def _checksum_path(path: Path) -> Path:
    return path.with_suffix(".sha256")


def _file_digest(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _load(path: Path, expected: tuple[int, ...]) -> tuple[np.ndarray | None, str]:
    """The entry, memory-mapped copy-on-write (never written back), if its header, shape and
    checksum are right; else None and what is wrong."""
    try:
        coefficients = np.load(path, mmap_mode="c")
    except (OSError, ValueError, EOFError) as error:
        return None, f"unreadable: {error}"
    if coefficients.dtype != np.float32 or coefficients.shape != expected:
        return None, f"{coefficients.dtype} {coefficients.shape}, expected float32 {expected}"
    try:
        recorded = _checksum_path(path).read_text().strip()
    except OSError:
        return None, "no checksum beside it"
    if _file_digest(path) != recorded:
        return None, "checksum mismatch"
    return coefficients, ""


def _store(path: Path, shape: tuple[int, ...], fill) -> None:
    """`fill` writes the coefficients into a memory-mapped temporary file; the checksum and then
    the entry itself are renamed into place once complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    os.close(handle)
    try:
        out = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32, shape=shape)
        fill(out)
        out.flush()
        del out
        checksum = Path(f"{temporary}.sha256")
        checksum.write_text(_file_digest(Path(temporary)))
        os.replace(checksum, _checksum_path(path))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        Path(f"{temporary}.sha256").unlink(missing_ok=True)
        raise
