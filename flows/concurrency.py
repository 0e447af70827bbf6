"""Concurrent task submission bounded by the configuration, shared by the flows."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from glasses.config import GlassesConfig
from tasks.progress import StageProgress


def run_concurrently(
    task: Task, parameters: list[dict[str, Any]], config: GlassesConfig
) -> list[Any]:
    """Submit every call to a thread pool of `runtime.workers` (1 when `sequential`) and return
    the results in submission order; a progress artifact and a log line follow each finished
    call. Each task divides torch's threads by the same count
    (`glasses.training.threads_per_worker`), so the pool never oversubscribes the cores."""
    workers = 1 if config.runtime.task_runner == "sequential" else config.runtime.workers
    bounded = task.with_options(retries=config.runtime.retries)
    progress = StageProgress(task.name, len(parameters))
    with ThreadPoolTaskRunner(max_workers=workers) as runner:
        futures = [runner.submit(bounded, call) for call in parameters]
        for _ in as_completed(futures):
            progress.advance()
        return [future.result() for future in futures]
