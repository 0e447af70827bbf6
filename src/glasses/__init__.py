"""Glasses / no glasses: train, compare and explain a CNN and a wavelet-scattering network.

The library of the study: every decision and policy, with neither Prefect nor MLflow. Importing
the package loads nothing else: entry points import `glasses.entrypoint` before torch loads.
Where each concept lives: docs/architecture.md.
"""

__all__ = [
    "augment",
    "cache_files",
    "cache_layout",
    "config",
    "cores",
    "crossval",
    "data",
    "drift",
    "entrypoint",
    "families",
    "filters",
    "fitting",
    "heads",
    "inference",
    "labels",
    "learning_curve",
    "liveness",
    "locking",
    "memory",
    "metrics",
    "models",
    "outer",
    "plots",
    "progress",
    "promotion",
    "result_format",
    "results",
    "retrain",
    "scattering",
    "statistics",
    "store",
    "sweep",
    "tables",
    "training",
    "validation",
    "xai",
]
