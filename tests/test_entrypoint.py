"""Entry points' process settings: passive OpenMP waiting and no telemetry, unless the user says
otherwise."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import torch

from glasses.entrypoint import (
    ALLOCATOR,
    PROCESS_DEFAULTS,
    prepare_process,
    scoped_environment,
    torch_threads,
    use_tracking_uri,
)


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


def test_figures_are_drawn_off_screen_after_the_set_up(monkeypatch) -> None:
    monkeypatch.delenv("MPLBACKEND", raising=False)
    prepare_process()
    assert os.environ["MPLBACKEND"] == "Agg"


LIBRARY = Path(__file__).parents[1] / "src" / "glasses"
GLOBAL_SETTERS = (
    "os.environ[",
    "os.environ.setdefault",
    "os.putenv",
    "mallopt",
    "set_num_threads",
    ".use(",
)


def test_only_the_entrypoint_changes_process_state() -> None:
    """Library modules leave the environment, the allocator and matplotlib's backend alone."""
    offenders = [
        f"{path.relative_to(LIBRARY)}: {setter}"
        for path in LIBRARY.rglob("*.py")
        if path.name != "entrypoint.py"
        for setter in GLOBAL_SETTERS
        if setter in path.read_text()
    ]
    assert offenders == []


def test_importing_the_figure_modules_leaves_the_backend_to_the_process() -> None:
    code = (
        "import matplotlib, glasses.plots, glasses.filters, glasses.xai.overlays, "
        "glasses.xai.randomisation_figure; print(matplotlib.rcParams._get_backend_or_none())"
    )
    env = {name: value for name, value in os.environ.items() if name != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)  # this checkout's glasses
    shown = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "None"  # not chosen yet: matplotlib picks at the first figure


def test_torch_threads_are_set_for_the_block_and_restored() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_a_scoped_environment_leaves_the_environment_as_it_was(monkeypatch) -> None:
    monkeypatch.setenv("GLASSES_CACHE_DIR", "/kept")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with scoped_environment({"GLASSES_CACHE_DIR": "/x", "MLFLOW_TRACKING_URI": "sqlite:///y"}):
        assert os.environ["GLASSES_CACHE_DIR"] == "/x"
        assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///y"
    assert os.environ["GLASSES_CACHE_DIR"] == "/kept"
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_the_store_a_flow_opened_is_the_one_child_processes_log_to(monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    use_tracking_uri("sqlite:////srv/runs.db")
    child = subprocess.run(
        [sys.executable, "-c", "import mlflow; print(mlflow.get_tracking_uri())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "sqlite:////srv/runs.db"


def test_a_gpu_process_gets_the_deterministic_flags(monkeypatch) -> None:
    """Set in the one place that sets process state, where CUDA is present; a CPU process is
    left as it was."""
    from glasses.entrypoint import deterministic_gpu

    before = (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    try:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        torch.backends.cudnn.deterministic = False
        torch.use_deterministic_algorithms(False)
        deterministic_gpu()
        assert not torch.backends.cudnn.deterministic
        assert not torch.are_deterministic_algorithms_enabled()
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        deterministic_gpu()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert PROCESS_DEFAULTS["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[:2]
        torch.use_deterministic_algorithms(before[2], warn_only=before[3])
