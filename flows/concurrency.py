"""Concurrent task submission bounded by the configuration, shared by the flows."""

from __future__ import annotations

from typing import Any

import torch
from prefect import Task
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from glasses.config import GlassesConfig
from glasses.training import threads_per_worker
from tasks.progress import StageProgress


def run_concurrently(
    task: Task, parameters: list[dict[str, Any]], config: GlassesConfig
) -> list[Any]:
    """Submit every call to a thread pool of `runtime.workers` (1 when `sequential`) and return
    the results in submission order; a progress artifact and a log line follow each finished
    call. torch's threads (one setting for the whole process) are divided by the pool's size
    here, once, so the concurrent tasks together fill the cores and never oversubscribe them."""
    workers = 1 if config.runtime.task_runner == "sequential" else config.runtime.workers
    torch.set_num_threads(threads_per_worker(workers))
    bounded = task.with_options(retries=config.runtime.retries)
    progress = StageProgress(task.name, len(parameters))
    with ThreadPoolTaskRunner(max_workers=workers) as runner:
        futures = [runner.submit(bounded, call) for call in parameters]
        for _ in as_completed(futures):
            progress.advance()
        return [future.result() for future in futures]
