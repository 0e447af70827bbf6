"""The configured task runner: tasks share the cores of the pool they run in, on threads of this
process or on a local Dask cluster's worker processes."""

from __future__ import annotations

import os

import pytest
import torch
from prefect import flow, task

from flows.concurrency import cores_divided, on_task_runner, run_concurrently
from glasses.config import GlassesConfig, resolve_config
from glasses.entrypoint import ALLOCATOR
from glasses.training import threads_per_worker


@task(name="threads-seen")
def threads_seen(index: int) -> tuple[int, int, int]:
    return index, torch.get_num_threads(), os.getpid()


@flow
def stage(config: GlassesConfig) -> list[tuple[int, int, int]]:
    return run_concurrently(threads_seen, [{"index": i} for i in range(3)], config)


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("runner", "workers", "pool"), [("threads", 2, 2), ("sequential", 2, 1)])
def test_tasks_share_the_cores_of_the_pool_they_run_in(restore_threads, runner, workers, pool):
    config = resolve_config("tiny", {"runtime": {"task_runner": runner, "workers": workers}})
    torch.set_num_threads(3)
    with cores_divided(config.runtime):
        results = on_task_runner(stage, config)(config)
    assert [index for index, _, _ in results] == [0, 1, 2]  # submission order
    assert {threads for _, threads, _ in results} == {threads_per_worker(pool)}
    assert {pid for _, _, pid in results} == {os.getpid()}
    assert torch.get_num_threads() == 3  # the process's setting, back after the flow


@task(name="allocator-seen")
def allocator_seen() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in ALLOCATOR}


@flow
def allocator_stage(config: GlassesConfig) -> list[dict[str, str | None]]:
    return run_concurrently(allocator_seen, [{}, {}], config)


def test_dask_runs_tasks_in_worker_processes_sized_to_the_cores(restore_threads):
    config = resolve_config("tiny", {"runtime": {"task_runner": "dask", "workers": 2}})
    results = on_task_runner(stage, config)(config)
    assert [index for index, _, _ in results] == [0, 1, 2]
    assert {threads for _, threads, _ in results} == {threads_per_worker(2)}
    assert os.getpid() not in {pid for _, _, pid in results}
    # Dask's default MALLOC_TRIM_THRESHOLD_ (65536) made torch training 1.4-2x slower in the
    # workers; flows/dask.yaml gives them the allocator settings of every glasses process.
    expected = {name: str(value) for name, value in ALLOCATOR.items()}
    assert on_task_runner(allocator_stage, config)(config) == [expected, expected]
