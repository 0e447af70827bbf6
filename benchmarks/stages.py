"""Wall time of the whole flow and of each stage, for a profile and data set.

Runs `glasses/full` in-process against a throw-away local MLflow store and (by default) a fresh
cache folder three times: cold (synthetic generation, scattering and every training measured);
warm, with the data caches filled but `runtime.resume` off, so all the work is redone; and
resumed, where every fold, sweep point and explanation comes from the first runs. What the
stages do not cover is the orchestration's share: Prefect (its temporary server included),
MLflow logging and the run summary, `overhead_share`. Numbers go to stdout as a markdown table;
`benchmarks.run` prints the same table beside the training costs.

    python -m benchmarks.stages [--profile quick] [--data synthetic] [--cache-dir DIR]
"""

from __future__ import annotations

from glasses.entrypoint import prepare_process, scoped_environment

prepare_process()  # before torch, Prefect or MLflow load

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from glasses.config import Overrides  # noqa: E402
from glasses.tables import markdown_table  # noqa: E402


@dataclass(frozen=True)
class FlowTiming:
    stages: dict[str, float]  # stage name -> seconds, from the run's `stage_<name>_seconds`
    wall: float  # the flow call, in-process, Prefect's temporary server start included
    train_images: int  # the training split the run's refits used
    peak_mb: dict[str, float]  # stage name -> peak resident MB (`stage_<name>_peak_rss_mb`)
    # stage name -> cores kept busy on average (`stage_<name>_cores_busy`)
    cores_busy: dict[str, float] = field(default_factory=dict)

    @property
    def overhead_share(self) -> float:
        """Share of the wall time outside every stage (goal: <= 0.10)."""
        return overhead_share(self.wall, self.stages.values())


def overhead_share(wall: float, stage_seconds: Iterable[float]) -> float:
    """(wall - sum of stage times) / wall."""
    if wall <= 0:
        raise ValueError(f"wall time must be positive, got {wall}")
    return (wall - sum(stage_seconds)) / wall


def stage_metric(metrics: dict[str, float], suffix: str) -> dict[str, float]:
    """`stage_<name>_<suffix>` metrics by stage name: `seconds`, `peak_rss_mb` or
    `cores_busy`."""
    ending = f"_{suffix}"
    return {
        key.removeprefix("stage_").removesuffix(ending): value
        for key, value in metrics.items()
        if key.startswith("stage_") and key.endswith(ending)
    }


def timed_flow(data: str, profile: str, overrides: dict | None = None) -> FlowTiming:
    from flows.full import glasses
    from mlflow import MlflowClient

    started = time.perf_counter()
    result = glasses(
        data=data, profile=profile, overrides=Overrides.model_validate(overrides or {})
    )
    wall = time.perf_counter() - started
    client = MlflowClient()
    run = client.get_run(result["mlflow_run_id"])
    (family_run,) = client.search_runs(
        [run.info.experiment_id],
        f"tags.mlflow.parentRunId = '{run.info.run_id}' and tags.family = 'cnn'",
    )
    train_images = int(family_run.data.metrics["train_images"])
    metrics = run.data.metrics
    return FlowTiming(
        stage_metric(metrics, "seconds"),
        wall,
        train_images,
        stage_metric(metrics, "peak_rss_mb"),
        stage_metric(metrics, "cores_busy"),
    )


@contextmanager
def scratch_store(cache_dir: str | None) -> Iterator[None]:
    """A throw-away working folder and MLflow store (and cache, unless given); the caller's
    folder and environment come back afterwards (set and restored: the flows read the store
    and the cache folder from the environment, as in any process)."""
    home = Path.cwd()
    with tempfile.TemporaryDirectory() as scratch:
        store = {
            "MLFLOW_TRACKING_URI": f"sqlite:///{scratch}/mlflow.db",
            "GLASSES_CACHE_DIR": cache_dir or str(Path(scratch) / "cache"),
        }
        os.chdir(scratch)
        try:
            with scoped_environment(store):
                yield
        finally:
            os.chdir(home)


# The three runs, in this order, and their overrides. WARM redoes all the work on filled caches.
COLD = "cold cache"
WARM = "warm cache, no resume"
RUNS: dict[str, dict] = {
    COLD: {},
    WARM: {"runtime": {"resume": False}},
    "resumed": {},
}


def flow_runs(data: str, profile: str, cache_dir: str | None = None) -> dict[str, FlowTiming]:
    """`RUNS`, one after the other on one cache folder."""
    with scratch_store(cache_dir):
        return {name: timed_flow(data, profile, overrides) for name, overrides in RUNS.items()}


def stage_table(timings: dict[str, FlowTiming]) -> pd.DataFrame:
    """Seconds per stage, their sum, the flow's wall time and the overhead share, per run."""
    table = pd.DataFrame({name: timing.stages for name, timing in timings.items()})
    table.loc["sum of stages"] = [sum(t.stages.values()) for t in timings.values()]
    table.loc["flow wall (incl. Prefect start)"] = [t.wall for t in timings.values()]
    table.loc["overhead (wall - stages), %"] = [100 * t.overhead_share for t in timings.values()]
    table.index.name = "stage"
    return table


# The reference host: other hosts here differ 2-3x in GEMM speed, so the goals are stated
# at this floor and each run's seconds are scaled by its own floor / this one.
REFERENCE_GFLOPS = 458.0
GOALS_SCALED = {"flow wall (incl. Prefect start)": 180.0, "xai": 40.0}


def scaled_table(cold: FlowTiming, gflops: float) -> pd.DataFrame:
    """The goals' rows of the cold run, measured and scaled to `REFERENCE_GFLOPS`: seconds x
    this machine's floor / the reference floor (a slower host's seconds shrink)."""
    measured = [cold.wall, cold.stages.get("xai", float("nan"))]  # GOALS_SCALED's order
    return pd.DataFrame(
        {
            f"{COLD} s": measured,
            f"scaled to {REFERENCE_GFLOPS:.0f} GFLOP/s": [
                s * gflops / REFERENCE_GFLOPS for s in measured
            ],
            "goal s (scaled)": list(GOALS_SCALED.values()),
        },
        index=pd.Index(list(GOALS_SCALED), name="stage"),
    )


def peak_memory_table(timings: dict[str, FlowTiming]) -> pd.DataFrame:
    """Peak resident MB per stage (the kernel's counter, reset per stage), per run."""
    table = pd.DataFrame({name: timing.peak_mb for name, timing in timings.items()})
    table.index.name = "stage"
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--cache-dir", help="use this cache instead of a fresh one (no cold run)")
    arguments = parser.parse_args()
    timings = flow_runs(arguments.data, arguments.profile, arguments.cache_dir)
    print(f"\nFlow stages ({arguments.profile}, {arguments.data}), seconds\n")
    print(markdown_table(stage_table(timings)))
    print("\nPeak resident memory, MB\n")
    print(markdown_table(peak_memory_table(timings)))


if __name__ == "__main__":
    main()
