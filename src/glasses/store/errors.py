"""What the dataset store raises."""

from __future__ import annotations


class DatasetError(RuntimeError):
    """The store refuses an operation that would make a version wrong, ambiguous or lossy."""


class DatasetLockedError(DatasetError):
    """Another process is changing the store; trying again later is always safe."""
