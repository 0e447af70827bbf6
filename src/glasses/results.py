"""Finished work kept on disk, keyed by everything that determines it, so that a re-run after a
crash (or a failure in a late stage) reuses it instead of training again.

A key hashes the kind of work, the settings it reads, its data and rows, the seed-bearing
indices (fold, size, repeat) and the library's own source code: change any of them and the work
is redone. Entries are JSON and NumPy arrays (`glasses.result_format`), never pickles, so a
cache folder that others can write cannot make a run execute their code; they are written
atomically and checked on read by `glasses.cache_files`. A damaged entry, or one this code cannot
read (an unknown kind of value, an unregistered class), is recomputed with a warning.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

import glasses
from glasses.cache_files import load_bytes, store_bytes, warn_damaged
from glasses.config import GlassesConfig
from glasses.result_format import NotAResult, decode, encode

if TYPE_CHECKING:
    from glasses.outer import PointPlan

T = TypeVar("T")

# What training reads from the configuration; the rest (sweep, xai, promotion, retrain, runtime
# but its precision, profile name) does not change a fold's or a sweep point's result, so
# changing it keeps them.
TRAINING_SECTIONS = {"seed", "data", "split", "augment", "cnn", "scatnet"}


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the `glasses` package's source: results of other code are never reused."""
    digest = hashlib.sha256()
    root = Path(glasses.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def training_settings(config: GlassesConfig) -> dict[str, Any]:
    """The training sections, and `runtime.precision` where it is not float32 (bf16 products
    change the results); `split.fold_curves` only where it is off (a fold's history then has no
    held-out scores). Default settings keep the keys of earlier releases."""
    settings = config.model_dump(
        mode="json", include=TRAINING_SECTIONS, exclude={"split": {"fold_curves"}}
    )
    if config.runtime.precision != "float32":
        settings["precision"] = config.runtime.precision
    if not config.split.fold_curves:
        settings["fold_curves"] = False
    return settings


def rows_digest(*arrays: np.ndarray) -> str:
    """Which rows (or masks): part of a key."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(str(array.dtype).encode())
    return digest.hexdigest()[:16]


def work_key(kind: str, **parts: Any) -> str:
    """`kind` and a hash of `parts` (JSON-able) and the code version."""
    payload = json.dumps({**parts, "code": code_version()}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:24]}"


def training_key(
    kind: str,
    config: GlassesConfig,
    data: str,
    rows: tuple[np.ndarray, ...],
    family: str,
    **indices: int,
) -> str:
    """The key of a training's result (fold, refit, sweep point): the training settings it
    reads, the data (its `DataRef.images` key), the rows it trained and scored on, the family,
    and the seed-bearing `indices` (fold, size, repeat, steps)."""
    return work_key(
        kind,
        settings=training_settings(config),
        data=data,
        rows=rows_digest(*rows),
        family=family,
        **indices,
    )


# Memory for scattering once, and images per LIME forward pass: the maps are the same (tested in
# tests/xai/test_correctness.py and test_lime_shap.py), so entries made before them stay valid.
XAI_SPEED_SETTINGS = {"scattering_memory_mb", "batch_size"}


def explanation_key(
    kind: str,
    config: GlassesConfig,
    weights: str,
    method: str,
    data: str,
    rows: np.ndarray,
    device: str,
    dtype: str,
) -> str:
    """The key of an explanation's result (maps, randomisation check): the model's `weights`
    digest (equal for the same training in a re-run, whatever its version number), the method
    and the XAI settings, the seed, the data (its `DataRef.images` key) and the rows; and where
    it was computed: the `device` and `dtype` of the model (`model_runtime`) and the torch
    version, since kernels differ between them and a map made on one must not stand in for
    another's. `XAI_SPEED_SETTINGS` are left out: they change how fast, not which maps."""
    return work_key(
        kind,
        xai=config.xai.model_dump(mode="json", exclude=XAI_SPEED_SETTINGS),
        seed=config.seed,
        weights=weights,
        method=method,
        data=data,
        rows=rows_digest(rows),
        device=device,
        dtype=dtype,
        torch=torch.__version__,
    )


def model_runtime(model: torch.nn.Module) -> tuple[str, str]:
    """(device, dtype) of `model`'s parameters, as `explanation_key` takes them."""
    parameter = next(model.parameters())
    return parameter.device.type, str(parameter.dtype).removeprefix("torch.")


def fold_seed(seed: int, fold: int) -> int:
    """The seed of cross-validation fold `fold`'s training: distinct per fold."""
    return seed + 1000 * fold


def point_seed(seed: int, plan: PointPlan) -> int:
    """The seed of an outer point's subset draw and training (the comparison's and the
    sweep's): distinct per outer split, draw and size."""
    return seed + 104_729 * plan.outer + 7919 * plan.repeat + (plan.size or 0)


class ResultStore:
    """`folder/<key>.npz` entries."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def get(self, key: str) -> Any | None:
        """The stored result, or None when there is none or it is damaged (with a warning)."""
        path = self.path(key)
        if not path.exists():
            return None
        data, problem = load_bytes(path)
        if data is not None:
            try:
                return decode(data)
            except NotAResult as error:
                problem = str(error)
        warn_damaged("result", path, problem)
        return None

    def put(self, key: str, value: Any) -> None:
        store_bytes(self.path(key), encode(value))

    def reuse_or_compute(self, key: str, compute: Callable[[], T]) -> tuple[T, bool]:
        """(result, whether it was reused): the stored one, else `compute()`, stored."""
        stored = self.get(key)
        if stored is not None:
            return stored, True
        value = compute()
        self.put(key, value)
        return value, False
