"""The one module that changes process state: environment, allocator, torch's threads and the
MLflow store every later call and child process uses.

Entry points call `prepare_process` first, before torch, Prefect or MLflow load: `glasses`
(flows/cli.py), the deployment server (deployments/serve.py), the container stack's Prefect and
Dask processes (`python -m flows.launch`), the benchmarks and the test suite; processes they start
(flow runs of a Prefect worker, Dask workers) inherit the environment. A flow start then names its
MLflow store here (`use_tracking_uri`). Library calls and imports never change the environment or
a global setting. Values already set by the user win.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

# glibc's allocator, as it treats torch's tensors: blocks up to 32 MiB come from the heap, and
# up to 128 MiB of freed heap stays with each of its arenas. By default it maps every block over
# 128 KiB (a 64 px batch's temporaries) freshly from the OS and hands freed memory back, so each
# step page-faults its tensors in again: augmentation ran 2-4x and a `paper` CNN step about 1.2x
# slower (`make benchmark`). Larger blocks (the ScatNet head's weights) still go back at once.
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": 32 * 2**20, "MALLOC_TRIM_THRESHOLD_": 128 * 2**20}
_MALLOPT = {"MALLOC_TRIM_THRESHOLD_": -1, "MALLOC_MMAP_THRESHOLD_": -3}  # M_TRIM_, M_MMAP_

PROCESS_DEFAULTS = {
    # OpenMP threads that spin while waiting make torch tens of times slower as soon as another
    # process wants the cores (scattering of 2 images: 0.05 s alone, 3.8 s beside a busy core).
    "OMP_WAIT_POLICY": "PASSIVE",
    # No telemetry: the temporary Prefect server, MLflow and Evidently would call the internet.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    # Figures are drawn in worker threads and on machines with no screen; matplotlib reads this
    # when it loads (`glasses.plots` and friends leave the backend to the process).
    "MPLBACKEND": "Agg",
    # Read by cuBLAS when CUDA starts: without it, deterministic matrix products on a GPU are not
    # available (`deterministic_gpu`).
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    # `deterministic_gpu` asks whether CUDA is there before any work: through NVML, so that the
    # question does not start the CUDA driver in a process that forks workers later.
    "PYTORCH_NVML_BASED_CUDA_CHECK": "1",
    # Read by glibc when a process starts: for the processes started from here (Dask workers).
    **{name: str(value) for name, value in ALLOCATOR.items()},
    # Bounded MLflow HTTP calls: a refused connection fails after ~10 s (3 retries, 1-2-4 s
    # backoff), a server that hangs after ~2 min, instead of MLflow's default 7 retries of up to
    # 120 s each; no progress bars in logs.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def prepare_process() -> None:
    """Set `PROCESS_DEFAULTS` where the environment does not already say otherwise, and apply
    the allocator settings to this process, which glibc read before Python could set them;
    then the deterministic GPU flags (`deterministic_gpu`)."""
    for name, value in PROCESS_DEFAULTS.items():
        os.environ.setdefault(name, value)
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): its allocator keeps its own counsel
        return
    for name, option in _MALLOPT.items():
        if os.environ[name].isdigit():  # glibc, too, ignores any other value
            libc.mallopt(option, int(os.environ[name]))


def use_tracking_uri(uri: str) -> None:
    """Name the MLflow store this process opened for MLflow's fluent API (`log_model`), which
    reads `MLFLOW_TRACKING_URI`, and for the processes it starts (Dask workers), so that all of
    them log to one store. Set by the connection (`tasks.tracking.connect`), never by a getter."""
    os.environ["MLFLOW_TRACKING_URI"] = uri


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's thread count (one setting per process) for a block, restored afterwards: a flow
    divides the cores among the tasks that run in its process."""
    import torch  # not at import: entry points import this module before torch loads

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)  # the restore


@contextmanager
def scoped_environment(values: Mapping[str, str]) -> Iterator[None]:
    """`values` in the environment for a block, the previous values (or their absence) restored
    afterwards: a benchmark's throw-away store and cache, read by the flows as in any process."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():  # the restore
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def deterministic_gpu() -> None:
    """Where a GPU is used, kernels that give the same numbers every run: cuDNN's deterministic
    algorithms without autotuning, and torch's deterministic implementations (a warning, not an
    error, where an operation has none). Results are keyed by device (`glasses.results`), so a
    GPU's maps never stand in for a CPU's; these make a GPU's own re-run reproduce them. A
    machine without CUDA is left alone. Called where a device is chosen
    (`glasses.training.resolve_device`), so that no entry point loads torch to ask."""
    import torch  # not at import: entry points import this module before torch loads

    if not torch.cuda.is_available():
        return
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
