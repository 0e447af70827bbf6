"""How the cores are shared among concurrent trainings: never more torch threads in all than
cores this process may use, since oversubscribed OpenMP threads make every training crawl."""

from __future__ import annotations

import os

from glasses.config import RuntimeConfig


def threads_per_worker(workers: int) -> int:
    """torch threads for each of `workers` concurrent trainings, so together they fill, not
    oversubscribe, the cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // workers)


def local_workers(runtime: RuntimeConfig) -> int:
    """Tasks that run at once in this process (threads) or on this machine (Dask workers)."""
    return 1 if runtime.task_runner == "sequential" else runtime.workers


def flow_threads(runtime: RuntimeConfig) -> int:
    """torch threads of the flow's own process: shared by the tasks of its thread pool, or all
    of them for its own work when Dask worker processes (with their own threads) train."""
    return threads_per_worker(1 if runtime.task_runner == "dask" else local_workers(runtime))
