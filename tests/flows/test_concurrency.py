"""The configured task runner: tasks share the cores of the pool they run in, on threads of this
process or on a local Dask cluster's worker processes."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
from distributed.client import FutureCancelledError
from prefect import flow, task

from flows.concurrency import (
    _result,
    cores_divided,
    longest_first,
    on_task_runner,
    run_concurrently,
)
from glasses.config import GlassesConfig, resolve_config
from glasses.cores import threads_per_worker
from glasses.entrypoint import ALLOCATOR


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


STARTED: list[int] = []


@task(name="records-start")
def records_start(index: int, size: int) -> int:
    STARTED.append(index)
    return index


@flow
def costed_stage(config: GlassesConfig, sizes: list[int]) -> list[int]:
    calls = [{"index": i, "size": size} for i, size in enumerate(sizes)]
    return run_concurrently(records_start, calls, config, cost=lambda call: call["size"])


def test_the_costliest_calls_start_first_and_results_keep_the_given_order(restore_threads):
    config = resolve_config("tiny", {"runtime": {"task_runner": "sequential"}})
    STARTED.clear()
    results = on_task_runner(costed_stage, config)(config, [1, 5, 2, 5, 3])
    assert STARTED == [1, 3, 4, 2, 0]  # one at a time, costliest first, ties in given order
    assert results == [0, 1, 2, 3, 4]


def test_longest_first_is_a_stable_descending_order() -> None:
    calls = [{"n": 2}, {"n": 7}, {"n": 2}, {"n": 9}]
    assert longest_first(calls, lambda call: call["n"]) == [3, 1, 0, 2]


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
    # workers; `dask_settings` gives them the allocator settings of every glasses process.
    expected = {name: str(value) for name, value in ALLOCATOR.items()}
    assert on_task_runner(allocator_stage, config)(config) == [expected, expected]


@task(name="comm-limits-seen")
def comm_limits_seen() -> tuple[str, str]:
    import dask

    return dask.config.get("distributed.comm.timeouts.tcp"), dask.config.get(
        "distributed.scheduler.worker-ttl"
    )


@flow
def comm_limits_stage(config: GlassesConfig) -> list[tuple[str, str]]:
    return run_concurrently(comm_limits_seen, [{}], config)


def test_dask_workers_and_the_flow_s_client_take_the_load_tolerant_limits(restore_threads):
    """Dask's 30 s comm limit lost the flow's connection to the scheduler on a busy machine."""
    import dask

    config = resolve_config("tiny", {"runtime": {"task_runner": "dask", "workers": 1}})
    assert on_task_runner(comm_limits_stage, config)(config) == [("600s", "15 minutes")]
    assert dask.config.get("distributed.comm.timeouts.tcp") == "600s"  # the client's


class _Lost:
    """A Dask-backed future whose result was cancelled in transit."""

    def result(self):
        raise FutureCancelledError("train-fold-1", reason="scheduler-connection-lost")


class _Task:
    name = "train-fold"

    def __init__(self, lost_times: int):
        self.submitted: list[dict] = []
        self.lost_times = lost_times

    def submit(self, **call):
        self.submitted.append(call)
        if len(self.submitted) <= self.lost_times:
            return _Lost()
        return SimpleNamespace(result=lambda: call["fold"] * 10)


@flow
def collect(task: _Task, retries: int) -> int:
    return _result(task, _Lost(), {"fold": 2}, retries)


def test_a_result_lost_on_the_way_back_is_asked_for_again():
    again = _Task(lost_times=0)
    assert collect(again, retries=1) == 20
    assert again.submitted == [{"fold": 2}]


def test_a_result_lost_every_time_is_one_clear_error():
    never = _Task(lost_times=5)
    with pytest.raises(RuntimeError, match="train-fold: its result was lost.*run again"):
        collect(never, retries=2)
    assert len(never.submitted) == 2
