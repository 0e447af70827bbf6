"""Cores shared among concurrent trainings: never more threads than cores."""

from __future__ import annotations

import os

import pytest

from glasses import cores
from glasses.config import RuntimeConfig
from glasses.cores import flow_threads, local_workers, threads_per_worker


@pytest.fixture
def eight_cores(monkeypatch) -> None:
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda _: set(range(8)), raising=False)


def test_threads_per_worker_matches_the_cores() -> None:
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for workers in (1, 2, 3, 64):
        threads = threads_per_worker(workers)
        assert threads >= 1
        assert threads == max(1, count // workers)


def test_threads_per_worker_divides_the_allowed_cores(eight_cores) -> None:
    assert [threads_per_worker(w) for w in (1, 2, 3, 4, 8, 16)] == [8, 4, 2, 2, 1, 1]


def test_the_flow_process_shares_its_cores_with_its_threads_not_with_dask_workers(
    eight_cores,
) -> None:
    assert local_workers(RuntimeConfig(task_runner="sequential", workers=4)) == 1
    assert flow_threads(RuntimeConfig(task_runner="sequential", workers=4)) == 8
    assert flow_threads(RuntimeConfig(task_runner="threads", workers=4)) == 2
    assert flow_threads(RuntimeConfig(task_runner="dask", workers=4)) == 8
