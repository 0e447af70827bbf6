"""The flows' task runner, chosen by `runtime.task_runner`, and submission through it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
import distributed
import yaml
from prefect import Flow, Task, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from glasses.config import GlassesConfig, RuntimeConfig
from glasses.cores import flow_threads, local_workers, threads_per_worker
from glasses.entrypoint import ALLOCATOR, torch_threads
from tasks.progress import StageProgress

WORKER_SETTINGS = Path(__file__).with_name("dask.yaml")


def _dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a.b": 1}: `dask.config.set` replaces whole sections otherwise."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _dotted(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def dask_settings() -> dict[str, Any]:
    """The project's Dask settings: `dask.yaml`, and the allocator settings of every glasses
    process (`glasses.entrypoint.ALLOCATOR`) for the workers, which a nanny would otherwise
    start with Dask's `MALLOC_TRIM_THRESHOLD_=65536`."""
    allocator = {
        f"distributed.nanny.pre-spawn-environ.{name}": str(value)
        for name, value in ALLOCATOR.items()
    }
    return _dotted(yaml.safe_load(WORKER_SETTINGS.read_text())) | allocator


def local_cluster(**kwargs: Any) -> distributed.LocalCluster:
    """A `LocalCluster` whose workers start with the project's Dask settings."""
    with dask.config.set(dask_settings()):
        return distributed.LocalCluster(**kwargs)


def task_runner(runtime: RuntimeConfig) -> TaskRunner:
    """A thread pool, or Dask: the scheduler at `dask_address`, else a local cluster of worker
    processes, one task each, whose torch threads together fill the cores."""
    if runtime.task_runner != "dask":
        return ThreadPoolTaskRunner(max_workers=local_workers(runtime))
    # The flow's process is a Dask client from here on: it takes the cluster's limits (global,
    # as Dask reads them whenever a connection opens; the same values in every flow).
    dask.config.set(dask_settings())
    if runtime.dask_address:
        return DaskTaskRunner(address=runtime.dask_address)
    threads = str(threads_per_worker(runtime.workers))
    return DaskTaskRunner(
        cluster_class=local_cluster,
        cluster_kwargs={
            "n_workers": runtime.workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
            # The rest of the workers' environment is this process's, prepared by its entry
            # point (`glasses.entrypoint`).
            "env": {"OMP_NUM_THREADS": threads},
        },
    )


def on_task_runner(flow: Flow, config: GlassesConfig) -> Flow:
    """`flow` with the task runner `runtime.task_runner` names."""
    return flow.with_options(task_runner=task_runner(config.runtime))


@contextmanager
def cores_divided(runtime: RuntimeConfig) -> Iterator[None]:
    """torch's threads (one setting per process) divided among the tasks that run in this
    process — threads of a pool; Dask workers set their own — and restored afterwards."""
    with torch_threads(flow_threads(runtime)):
        yield


def run_concurrently(
    task: Task,
    parameters: list[dict[str, Any]],
    config: GlassesConfig,
    on_first: Callable[[float], None] | None = None,
    cost: Callable[[dict[str, Any]], float] | None = None,
) -> list[Any]:
    """Submit every call through the flow's task runner and return the results in the order
    of `parameters`; a progress artifact and a log line follow each finished call, and
    `on_first` gets the seconds the first one took per unit of its `cost` (trainings, where the
    calls train). With a `cost` of each call, the costliest are submitted first (equal costs in
    their given order): started last, a long task would run alone on the cores while the others
    wait for it."""
    bounded = task.with_options(retries=config.runtime.retries)
    progress = StageProgress(task.name, len(parameters), on_first)
    order = longest_first(parameters, cost) if cost else range(len(parameters))
    futures = {i: bounded.submit(**parameters[i]) for i in order}
    position = {id(future): i for i, future in futures.items()}
    for future in as_completed(list(futures.values())):
        progress.advance(cost(parameters[position[id(future)]]) if cost else 1)
    return [
        _result(bounded, futures[i], call, config.runtime.retries)
        for i, call in enumerate(parameters)
    ]


def longest_first(
    parameters: list[dict[str, Any]], cost: Callable[[dict[str, Any]], float]
) -> list[int]:
    """Positions of `parameters`, costliest call first; a stable sort keeps ties in order."""
    return sorted(range(len(parameters)), key=lambda i: -cost(parameters[i]))


def _result(task: Task, future: PrefectFuture, call: dict[str, Any], retries: int) -> Any:
    """The call's result; one cancelled on the way back (a Dask client that lost the scheduler,
    a worker that died) is asked for again, up to `retries` times. Cheap: work that finished
    is in the result store, so the new run only reads it."""
    for _ in range(retries):
        try:
            return future.result()
        except CancelledError as lost:
            get_run_logger().warning("%s: result lost (%s); submitting it again", task.name, lost)
            future = task.submit(**call)
    try:
        return future.result()
    except CancelledError as lost:
        raise RuntimeError(
            f"{task.name}: its result was lost on the way back ({lost or 'cancelled'}); check "
            "the Dask cluster, then run again: finished work is reused"
        ) from lost
