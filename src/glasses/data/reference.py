"""A run's image set and scattering coefficients as a small reference that tasks carry.

Tasks may run in other threads, in Dask worker processes or on other machines, so they are
handed a `DataRef` (folder, keys, shapes) instead of arrays, and open the entries themselves
from the shared cache folder. Each process opens an entry once (memory-mapped, checksum checked)
and its tasks share it.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from glasses.cache_files import load_array, load_bytes, store_array, store_bytes, warn_damaged
from glasses.cache_layout import CacheLayout
from glasses.data.images import ImageSet
from glasses.families import SPECS, Family
from glasses.scattering import CachedCoefficients

IMAGES_VERSION = "1"  # bump when decoding changes what pixels a manifest yields


class DataUnavailable(RuntimeError):
    """A referenced entry is missing or damaged where a task runs; the message says why."""


@dataclass(frozen=True)
class DataRef:
    cache_dir: str  # shared by every process that runs a task (a shared volume on a cluster)
    images: str  # key of the decoded image set: pixels and manifest
    shape: tuple[int, ...]  # of the pixels, N x 3 x side x side
    coefficients: str | None = None  # key of the scattering cache entry
    coefficient_shape: tuple[int, ...] | None = None
    augmented: str | None = None  # key of the entry with augmented copies (ScatNet training)
    augmented_shape: tuple[int, ...] | None = None

    @property
    def cache(self) -> CacheLayout:
        """Where this reference's entries are."""
        return CacheLayout(Path(self.cache_dir))

    def with_coefficients(self, cached: CachedCoefficients) -> DataRef:
        return replace(
            self,
            coefficients=cached.path.stem,
            coefficient_shape=tuple(cached.coefficients.shape),
        )

    def with_augmented(self, cached: CachedCoefficients) -> DataRef:
        return replace(
            self, augmented=cached.path.stem, augmented_shape=tuple(cached.coefficients.shape)
        )


def store_image_set(images: ImageSet, cache_dir: Path) -> DataRef:
    """Write the decoded images into the cache (unless an intact entry is there) and return
    their reference. Keyed by the manifest (paths, labels, groups, file hashes) and the pixel
    shape, which together determine the pixels."""
    manifest = io.BytesIO()
    images.manifest.to_parquet(manifest, index=False)
    digest = hashlib.sha256(pd.util.hash_pandas_object(images.manifest, index=False).values)
    digest.update(f"{images.pixels.shape};v={IMAGES_VERSION}".encode())
    key = digest.hexdigest()[:24]
    shape = tuple(images.pixels.shape)
    pixels_path, manifest_path = CacheLayout(cache_dir).images(key)
    stored, problem = load_array(pixels_path, shape, np.uint8)
    if stored is None:
        if pixels_path.exists():
            warn_damaged("image", pixels_path, problem)
        store_array(pixels_path, shape, np.uint8, images.pixels)  # row by row
    stored, problem = load_bytes(manifest_path)
    if stored is None:
        if manifest_path.exists():
            warn_damaged("image", manifest_path, problem)
        store_bytes(manifest_path, manifest.getvalue())
    return DataRef(str(cache_dir), key, shape)


@lru_cache(maxsize=4)
def image_set(ref: DataRef) -> ImageSet:
    """The referenced images, opened once per process."""
    pixels_path, manifest_path = ref.cache.images(ref.images)
    pixels, problem = load_array(pixels_path, ref.shape, np.uint8)
    if pixels is None:
        raise DataUnavailable(_unavailable(pixels_path, problem))
    manifest, problem = load_bytes(manifest_path)
    if manifest is None:
        raise DataUnavailable(_unavailable(manifest_path, problem))
    return ImageSet(pd.read_parquet(io.BytesIO(manifest)), pixels)


@lru_cache(maxsize=4)
def coefficients(ref: DataRef) -> torch.Tensor:
    """The referenced scattering coefficients, opened once per process."""
    if ref.coefficients is None or ref.coefficient_shape is None:
        raise DataUnavailable("this data reference has no scattering coefficients yet")
    return _scattering_entry(ref.cache, ref.coefficients, ref.coefficient_shape)


@lru_cache(maxsize=4)
def augmented_coefficients(ref: DataRef) -> torch.Tensor:
    """The referenced coefficients with augmented copies, (K+1)·N rows in the layout of
    `glasses.training.Rows.with_copies` (the first N the originals), opened once per process."""
    if ref.augmented is None or ref.augmented_shape is None:
        raise DataUnavailable("this data reference has no augmented copies (augmented_copies: 0)")
    return _scattering_entry(ref.cache, ref.augmented, ref.augmented_shape)


def _scattering_entry(cache: CacheLayout, key: str, shape: tuple[int, ...]) -> torch.Tensor:
    path = cache.scattering(key)
    stored, problem = load_array(path, shape, np.float32)
    if stored is None:
        raise DataUnavailable(_unavailable(path, problem))
    return torch.from_numpy(stored)


def family_inputs(ref: DataRef, family: Family) -> torch.Tensor:
    """What `family` trains on: uint8 pixels, or scattering coefficients, with augmented copies
    after them where the run made some (`scatnet.augmented_copies`)."""
    if SPECS[family].inputs == "pixels":
        return torch.from_numpy(image_set(ref).pixels)
    return augmented_coefficients(ref) if ref.augmented is not None else coefficients(ref)


def _unavailable(path: Path, problem: str) -> str:
    reason = "is missing" if not path.exists() else f"is damaged ({problem})"
    return (
        f"cache entry {path} {reason}; every process that runs tasks needs the run's cache "
        "folder (GLASSES_CACHE_DIR on a shared volume); re-run the flow to rewrite it"
    )
