"""The concurrent stages divide torch's threads by the pool they run in, once per stage."""

from __future__ import annotations

import pytest
import torch
from prefect import flow, task

from flows.concurrency import run_concurrently
from glasses.config import resolve_config
from glasses.training import threads_per_worker


@task(name="threads-seen")
def threads_seen(index: int) -> tuple[int, int]:
    return index, torch.get_num_threads()


@flow
def stage(task_runner: str, workers: int) -> list[tuple[int, int]]:
    config = resolve_config("tiny", {"runtime": {"task_runner": task_runner, "workers": workers}})
    return run_concurrently(threads_seen, [{"index": i} for i in range(3)], config)


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("runner", "workers", "pool"), [("threads", 2, 2), ("sequential", 2, 1)])
def test_tasks_share_the_cores_of_the_pool_they_run_in(restore_threads, runner, workers, pool):
    results = stage(runner, workers)
    assert [index for index, _ in results] == [0, 1, 2]  # submission order
    assert {threads for _, threads in results} == {threads_per_worker(pool)}
