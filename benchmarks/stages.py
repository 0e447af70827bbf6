"""Wall time of the whole flow and of each stage, for a profile and data set.

Runs `glasses/full` in-process against a throw-away local MLflow store (and, by default, a fresh
cache folder, so synthetic generation and scattering are measured cold), then runs it again on
the warm cache to show what the caches save (`--cache-dir` reuses a cache, so both runs are
warm). Numbers go to stdout as a markdown table.

    .venv/bin/python benchmarks/stages.py [--profile quick] [--data synthetic] [--cache-dir DIR]
"""

from __future__ import annotations

from glasses.entrypoint import prepare_process

prepare_process()  # before torch, Prefect or MLflow load

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def measure(data: str, profile: str) -> dict[str, float]:
    from flows.full import glasses
    from mlflow import MlflowClient

    started = time.perf_counter()
    result = glasses(data=data, profile=profile)
    wall = time.perf_counter() - started
    metrics = MlflowClient().get_run(result["mlflow_run_id"]).data.metrics
    stages = {
        k.removeprefix("stage_").removesuffix("_seconds"): v
        for k, v in metrics.items()
        if k.startswith("stage_")
    }
    return {**stages, "flow (in-process, incl. Prefect start)": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--cache-dir", help="reuse this cache instead of a fresh one")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch}/mlflow.db"
        os.environ["GLASSES_CACHE_DIR"] = arguments.cache_dir or str(Path(scratch) / "cache")
        cold = measure(arguments.data, arguments.profile)
        warm = measure(arguments.data, arguments.profile)
    print(f"\n| stage ({arguments.profile}, {arguments.data}) | cold cache, s | warm cache, s |")
    print("|---|---|---|")
    for stage in cold:
        print(f"| {stage} | {cold[stage]:.1f} | {warm.get(stage, float('nan')):.1f} |")


if __name__ == "__main__":
    main()
