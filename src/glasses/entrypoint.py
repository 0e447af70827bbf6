"""Process-wide settings that every entry point makes first, before torch or Prefect load.

Only entry points call `prepare_process` (`glasses`, the deployment server, the benchmarks, the
test suite): library calls never change the environment. Values already set by the user win.
"""

from __future__ import annotations

import os

PROCESS_DEFAULTS = {
    # OpenMP threads that spin while waiting make torch tens of times slower as soon as another
    # process wants the cores (scattering of 2 images: 0.05 s alone, 3.8 s beside a busy core).
    "OMP_WAIT_POLICY": "PASSIVE",
    # No telemetry: the temporary Prefect server, MLflow and Evidently would call the internet.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
}


def prepare_process() -> None:
    """Set `PROCESS_DEFAULTS` where the environment does not already say otherwise."""
    for name, value in PROCESS_DEFAULTS.items():
        os.environ.setdefault(name, value)
