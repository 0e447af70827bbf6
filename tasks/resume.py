"""Resume, don't redo: the tasks' access to the result store (`glasses.results`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from glasses.config import GlassesConfig
from glasses.data.reference import DataRef
from glasses.results import ResultStore

T = TypeVar("T")
REUSED = "glasses.reused"  # tag of an MLflow run whose result came from the store


def result_store(data: DataRef) -> ResultStore:
    """Finished work lives beside the run's data, in the shared cache folder."""
    return ResultStore(data.cache.results)


def reuse_when_resuming(
    data: DataRef, config: GlassesConfig, key: str, compute: Callable[[], T]
) -> tuple[T, bool]:
    """(result, reused): the stored one when `runtime.resume` allows, else computed and kept
    for the next run."""
    return reuse_all_when_resuming(data, config, [key], lambda _: [compute()])[0]


def reuse_all_when_resuming(
    data: DataRef, config: GlassesConfig, keys: list[str], compute: Callable[[list[int]], list[T]]
) -> list[tuple[T, bool]]:
    """(result, reused) for every key: the stored ones when `runtime.resume` allows; the others
    computed together, `compute(positions)` given their positions in `keys`, and kept for the
    next run."""
    store = result_store(data)
    found = [store.get(key) if config.runtime.resume else None for key in keys]
    missing = [position for position, value in enumerate(found) if value is None]
    computed = compute(missing) if missing else []
    for position, value in zip(missing, computed, strict=True):
        store.put(keys[position], value)
        found[position] = value
    return [(value, position not in missing) for position, value in enumerate(found)]
