"""Scattering coefficients, computed once per image set and cached on disk.

The filters are fixed wavelets, so an image's coefficients never change: every fold, every epoch
and every later run on the same pixels (same data, size, J and L) reuses them. The cache key is a
hash of the decoded pixels themselves, so a changed image can never hit a stale entry. Each entry
has the SHA-256 of its file beside it and is checked on every read: a damaged one (truncated,
altered, unreadable) is recomputed and replaced, with a `CacheWarning` naming the file.

With `scatnet.augmented_copies` = K > 0, K augmented copies of every image (the CNN's
augmentation, from seeded generators) are scattered once into a second entry of (K+1)·N rows:
copy c of image r at row c·N + r, copy 0 the original (see `glasses.training.Rows.with_copies`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from glasses.augment import augment
from glasses.cache_files import load_array, store_array, warn_damaged
from glasses.cache_layout import CacheLayout
from glasses.config import GlassesConfig
from glasses.models.scatnet import coefficient_count, scattering_transform

CACHE_VERSION = "4"  # 4: .npy (memory-mapped on read) with its .npy.sha256 beside it
BATCH_SIZE = 64  # images per transform; an augmented copy's random draws depend on it


@dataclass
class CachedCoefficients:
    coefficients: torch.Tensor  # float32, rows x 3 x paths x side x side; memory-mapped
    path: Path
    hit: bool


def _unchanged(images: torch.Tensor) -> torch.Tensor:
    return images


def _batches(
    pixels: np.ndarray,
    J: int,
    L: int,
    batch_size: int,
    device: str,
    distort: Callable[[torch.Tensor], torch.Tensor] = _unchanged,
) -> Iterator[np.ndarray]:
    """Coefficients of the [0, 1] images, batch by batch, each batch through `distort` first
    (on the CPU, where the augmentation's generator lives)."""
    pixels = np.ascontiguousarray(pixels)  # kymatio refuses strided tensors
    transform = scattering_transform(J, L, pixels.shape[-1]).to(device)
    with torch.no_grad():
        for start in range(0, len(pixels), batch_size):
            batch = distort(torch.from_numpy(pixels[start : start + batch_size]).float() / 255)
            yield transform(batch.to(device)).cpu().numpy()


def _shape(pixels: np.ndarray, J: int, L: int) -> tuple[int, ...]:
    n, channels, side = len(pixels), pixels.shape[1], pixels.shape[-1] // 2**J
    return (n, channels, coefficient_count(J, L), side, side)


def compute_coefficients(
    pixels: np.ndarray, J: int, L: int, batch_size: int = BATCH_SIZE, device: str = "cpu"
) -> torch.Tensor:
    """Coefficients of uint8 N x 3 x S x S images scaled to [0, 1], as the models see them."""
    out = np.empty(_shape(pixels, J, L), dtype=np.float32)
    start = 0
    for batch in _batches(pixels, J, L, batch_size, device):
        out[start : start + len(batch)] = batch
        start += len(batch)
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
    concurrent readers (threads, or Dask workers on this machine) share them. Written and checked
    by `glasses.cache_files`: a killed run never leaves a truncated entry, a damaged one is
    recomputed.
    """
    path = CacheLayout(cache_dir).scattering(cache_key(pixels, J, L))
    expected = _shape(pixels, J, L)
    if (cached := _opened(path, expected, "scattering")) is not None:
        return cached
    return _stored(path, expected, _batches(pixels, J, L, BATCH_SIZE, device))


def _opened(path: Path, shape: tuple[int, ...], kind: str) -> CachedCoefficients | None:
    """The intact entry at `path`, if there is one; a damaged one is reported."""
    if not path.exists():
        return None
    stored, problem = load_array(path, shape, np.float32)
    if stored is None:
        warn_damaged(kind, path, problem)
        return None
    return CachedCoefficients(torch.from_numpy(stored), path, hit=True)


def _stored(
    path: Path, shape: tuple[int, ...], batches: Iterable[np.ndarray]
) -> CachedCoefficients:
    store_array(path, shape, np.float32, batches)
    stored, problem = load_array(path, shape, np.float32)
    assert stored is not None, problem
    return CachedCoefficients(torch.from_numpy(stored), path, hit=False)


def augmented_key(pixels: np.ndarray, config: GlassesConfig) -> str:
    """The plain entry's key (pixels, J, L) with everything that decides the copies."""
    copies = config.scatnet.augmented_copies
    digest = hashlib.sha256(cache_key(pixels, config.scatnet.J, config.scatnet.L).encode())
    digest.update(
        f"copies={copies};augment={config.augment.model_dump_json()};seed={config.seed};"
        f"batch={BATCH_SIZE}".encode()
    )
    return digest.hexdigest()[:24]


def copy_generator(seed: int, copy: int) -> torch.Generator:
    """Copy `copy`'s own stream, apart from the `seed + k` streams that training draws from."""
    state = np.random.SeedSequence((seed, copy)).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def cached_augmented_coefficients(
    pixels: np.ndarray,
    plain: torch.Tensor,
    config: GlassesConfig,
    cache_dir: Path,
    device: str = "cpu",
) -> CachedCoefficients:
    """Coefficients of the originals and of `scatnet.augmented_copies` augmented copies of
    every image, (K+1)·N rows memory-mapped from the cache like `cached_coefficients`.

    Copy 0 is `plain` (the pixels' coefficients) copied, so it equals them exactly; copy c is
    `augment` with the generator of (`seed`, c), batch by batch. The augmentation is the CNN's,
    but drawn once: a ScatNet training samples among K fixed copies, where the CNN sees fresh
    distortions every step.
    """
    copies, n = config.scatnet.augmented_copies, len(pixels)
    if copies < 1:
        raise ValueError("scatnet.augmented_copies is 0: the plain coefficients are all there is")
    plain_shape = _shape(pixels, config.scatnet.J, config.scatnet.L)
    if tuple(plain.shape) != plain_shape:
        raise ValueError(f"plain coefficients {tuple(plain.shape)}, expected {plain_shape}")
    path = CacheLayout(cache_dir).scattering(augmented_key(pixels, config))
    expected = ((copies + 1) * n, *plain_shape[1:])
    if (cached := _opened(path, expected, "augmented scattering")) is not None:
        return cached

    def batches() -> Iterator[np.ndarray]:
        for start in range(0, n, BATCH_SIZE):
            yield plain[start : start + BATCH_SIZE].numpy()
        for copy in range(1, copies + 1):
            distort = partial(
                augment, config=config.augment, generator=copy_generator(config.seed, copy)
            )
            yield from _batches(
                pixels, config.scatnet.J, config.scatnet.L, BATCH_SIZE, device, distort
            )

    return _stored(path, expected, batches())
