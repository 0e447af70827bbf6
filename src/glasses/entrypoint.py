"""Process-wide settings that every entry point makes first, before torch or Prefect load.

The one place in the library that changes process state. Only entry points call
`prepare_process`: `glasses` (flows/cli.py), the deployment server (deployments/serve.py), the
container stack's Prefect and Dask processes (`python -m flows.launch`), the benchmarks and the
test suite; processes they start (flow runs of a Prefect worker, Dask workers) inherit the
environment. Library calls and imports never change the environment or a global setting. Values
already set by the user win. MLflow's process-wide state is `tasks.tracking.configure_tracking`'s.
"""

from __future__ import annotations

import ctypes
import os

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
    # Read by glibc when a process starts: for the processes started from here (Dask workers).
    **{name: str(value) for name, value in ALLOCATOR.items()},
}


def prepare_process() -> None:
    """Set `PROCESS_DEFAULTS` where the environment does not already say otherwise, and apply
    the allocator settings to this process, which glibc read before Python could set them."""
    for name, value in PROCESS_DEFAULTS.items():
        os.environ.setdefault(name, value)
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): its allocator keeps its own counsel
        return
    for name, option in _MALLOPT.items():
        if os.environ[name].isdigit():  # glibc, too, ignores any other value
            libc.mallopt(option, int(os.environ[name]))
