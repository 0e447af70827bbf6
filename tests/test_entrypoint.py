"""Entry points' process settings: passive OpenMP waiting and no telemetry, unless the user says
otherwise."""

from __future__ import annotations

import os
import resource

import torch

from glasses.entrypoint import ALLOCATOR, PROCESS_DEFAULTS, prepare_process


def test_defaults_are_set_and_user_values_win(monkeypatch) -> None:
    for name in PROCESS_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    prepare_process()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "true"


def test_allocator_keeps_freed_memory_for_the_next_batch(monkeypatch) -> None:
    """Applied to the running process too: a step's 1 MB temporaries, freed together, are
    reused by the next step instead of being handed back to the OS and faulted in again (glibc's
    default: about 4 page faults per KB, every step)."""
    for name in ALLOCATOR:
        monkeypatch.delenv(name, raising=False)
    prepare_process()
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(32 * 2**20)

    def step() -> None:
        temporaries = [torch.empty(2**18).fill_(1.0) for _ in range(16)]  # 16 x 1 MB at once
        del temporaries

    step()
    # This thread's faults only: Prefect's or MLflow's threads left by other tests do not count.
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(10):
        step()
    faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
    assert faults < 16 * 2**20 // 4096  # less than one step's pages in all ten steps


def test_a_user_value_that_is_not_a_byte_count_is_left_to_glibc(monkeypatch) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "lots")
    prepare_process()  # no error: glibc ignores such a value at start, and so do we
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "lots"
