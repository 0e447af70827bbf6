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
    """(result, reused): the store's `reuse_or_compute` when `runtime.resume` allows, else
    computed afresh and kept for the next run."""
    store = result_store(data)
    if not config.runtime.resume:
        value = compute()
        store.put(key, value)
        return value, False
    return store.reuse_or_compute(key, compute)
