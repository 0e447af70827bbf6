"""`make benchmark`: is the CPU path near the machine's limit, and what does orchestration cost?

In one process: the GEMM floor (`benchmarks.floor`), each family's training cost per image
against it and against the seed study's plain loop (`benchmarks.training_cost`, at `--profile`'s
sizes), one training step at `--flow-profile`'s sizes on one thread, part by part
(`benchmarks.step_parts`), then the `glasses/full` flow cold, warm and resumed, with its stage
times and the share of its wall time outside every stage (`benchmarks.stages`, at
`--flow-profile`), and the training work of its stages at the GEMM floor beside their measured
times (`benchmarks.work`). Prints markdown; with MLFLOW_TRACKING_URI set, also logs the tables
and the key numbers to the experiment `glasses-benchmarks`.

    python -m benchmarks.run [--profile paper] [--flow-profile quick] [--data synthetic]
                             [--skip-flow] [--cache-dir DIR]
"""

from __future__ import annotations

from glasses.entrypoint import prepare_process

prepare_process()  # before torch, Prefect or MLflow load

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from benchmarks.floor import gemm_gflops  # noqa: E402
from benchmarks.stages import (  # noqa: E402
    COLD,
    REFERENCE_GFLOPS,
    WARM,
    flow_runs,
    peak_memory_table,
    scaled_table,
    stage_table,
)
from benchmarks.step_parts import one_thread_parts  # noqa: E402
from benchmarks.training_cost import Cost, PlainLoop, measure, timed_config  # noqa: E402
from benchmarks.work import gap_table, training_work, work_table  # noqa: E402
from glasses.config import resolve_config  # noqa: E402
from glasses.cores import local_workers, threads_per_worker  # noqa: E402
from glasses.families import FAMILIES  # noqa: E402
from glasses.tables import markdown_table  # noqa: E402

EXPERIMENT = "glasses-benchmarks"


def cost_table(costs: list[Cost]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "GFLOP / image": [c.gflop_per_image for c in costs],
            "floor ms": [c.floor_ms for c in costs],
            "project ms": [c.project_ms for c in costs],
            "project / floor (goal <= 1.3)": [c.floor_ratio for c in costs],
            "plain loop ms": [c.plain_loop_ms for c in costs],
            "plain loop / project (goal >= 1.5, CNN)": [c.speedup for c in costs],
        },
        index=pd.Index([c.family for c in costs], name="family"),
    )


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def log_to_mlflow(
    sections: dict[str, str], metrics: dict[str, float], params: dict[str, str]
) -> str:
    """One run in `glasses-benchmarks` of the store `MLFLOW_TRACKING_URI` names, set up as a
    flow start sets it up: every table as a markdown artifact, the key numbers as metrics, the
    settings as params. Returns the tracking URI."""
    from tasks.log import log_file, log_metrics, log_params
    from tasks.runs import run_outcome, start_run
    from tasks.tracking import client, experiment_id, open_store

    uri = open_store()
    tracking = client()
    run_id = start_run(tracking, experiment_id(tracking, EXPERIMENT), "benchmark", None, {})
    with run_outcome(tracking, run_id):
        log_params(tracking, run_id, params)
        log_metrics(tracking, run_id, metrics)
        log_file(tracking, run_id, "\n\n".join(sections.values()), "benchmark.md")
    return uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="paper", help="sizes of the training-cost part")
    parser.add_argument("--flow-profile", default="quick", help="profile of the timed flow runs")
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--skip-flow", action="store_true", help="only the training costs")
    parser.add_argument("--cache-dir", help="use this cache for the flow runs (none cold)")
    arguments = parser.parse_args()
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")  # the flow runs use a scratch store
    sections = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
        f"threads; load average (1, 5, 15 min) before: {load_average()}"
    }
    metrics = {"load_average_before": os.getloadavg()[0]}

    rates = gemm_gflops()
    floor_rate = max(rates.values())
    gemm = pd.DataFrame({"GFLOP/s": rates}).rename_axis("float32 GEMM 2048^3")
    sections["gemm"] = markdown_table(gemm)
    metrics |= {f"gemm_gflops_{name.split()[0].lower()}": rate for name, rate in rates.items()}
    print(sections["machine"], "\n", sections["gemm"], sep="\n", flush=True)

    config = timed_config(arguments.profile)
    costs = [measure(family, config, floor_rate) for family in FAMILIES]
    sections["costs"] = (
        f"Training cost per image, `{arguments.profile}` sizes "
        f"({config.data.image_size} px), floor at {floor_rate:.0f} GFLOP/s\n\n"
        + markdown_table(cost_table(costs))
    )
    for cost in costs:
        metrics |= {
            f"{cost.family}_project_ms_per_image": cost.project_ms,
            f"{cost.family}_floor_ms_per_image": cost.floor_ms,
            f"{cost.family}_floor_ratio": cost.floor_ratio,
            f"{cost.family}_speedup_over_plain_loop": cost.speedup,
        }
    print("", sections["costs"], sep="\n", flush=True)

    one_thread, parts = one_thread_parts(arguments.flow_profile)
    sections["step"] = (
        f"One training step, `{arguments.flow_profile}` sizes, on one thread as each of the "
        f"flow's trainings runs ({one_thread:.0f} GFLOP/s)\n\n" + markdown_table(parts)
    )
    metrics |= {
        f"{family}_step_floor_ratio": ratio
        for (family, part), ratio in parts["x floor"].items()
        if part == "whole step"
    }
    print("", sections["step"], sep="\n", flush=True)

    if not arguments.skip_flow:
        timings = flow_runs(arguments.data, arguments.flow_profile, arguments.cache_dir)
        sections["flow"] = (
            f"Flow stages, `{arguments.flow_profile}` on {arguments.data}, seconds\n\n"
            + markdown_table(stage_table(timings))
        )
        scaled = scaled_table(timings[COLD], floor_rate)
        sections["scaled"] = (
            f"The cold run scaled to the goals' {REFERENCE_GFLOPS:.0f} GFLOP/s floor "
            f"(seconds x {floor_rate:.0f} / {REFERENCE_GFLOPS:.0f})\n\n" + markdown_table(scaled)
        )
        metrics |= {
            f"scaled_cold_{row.split()[0]}_seconds": value
            for row, value in scaled.iloc[:, 1].items()
        }
        sections["memory"] = "Peak resident memory per stage, MB\n\n" + markdown_table(
            peak_memory_table(timings)
        )
        for name, timing in timings.items():
            slug = name.split(",")[0].replace(" ", "_")
            metrics |= {
                f"flow_{slug}_seconds": timing.wall,
                f"overhead_share_{slug}": timing.overhead_share,
                f"flow_{slug}_peak_rss_mb": max(timing.peak_mb.values(), default=0.0),
            }
        print("", sections["flow"], "", sections["scaled"], "", sections["memory"], sep="\n")
        warm = timings[WARM]
        flow_config = resolve_config(arguments.flow_profile, {})
        gflop = {f: PlainLoop.build(f, flow_config).flops_per_image() / 1e9 for f in FAMILIES}
        stage_work = training_work(flow_config, warm.train_images, gflop)
        work = work_table(stage_work, warm.stages, floor_rate)
        sections["work"] = (
            f"Training work of `{arguments.flow_profile}` ({warm.train_images} training images) "
            f"at the {floor_rate:.0f} GFLOP/s floor, beside the warm run's stage times\n\n"
            + markdown_table(work)
        )
        metrics |= {f"floor_seconds_{stage}": s for stage, s in work["floor s"].items()}
        workers = local_workers(flow_config.runtime)
        cores = workers * threads_per_worker(workers)
        whole_step = {f: parts.loc[(f, "whole step"), "ms / step"] for f in FAMILIES}
        gaps = gap_table(work, stage_work, warm.cores_busy, whole_step, cores)
        sections["gaps"] = (
            f"Why each stage is where it is: measured / floor = step / floor x CPU / steps "
            f"alone x cores / cores busy (the warm run, {cores} cores; steps alone at the "
            f"one-thread step table's whole step)\n\n" + markdown_table(gaps)
        )
        metrics |= {
            f"{stage}_{slug}": value
            for stage, row in gaps.iterrows()
            for slug, column in (
                ("step_floor_ratio", "step / floor"),
                ("neighbour_factor", "CPU / steps alone"),
                ("idle_factor", "cores / cores busy"),
            )
            if pd.notna(value := row[column])  # measured stages only
        }
        print("", sections["work"], "", sections["gaps"], sep="\n")
    sections["after"] = f"Load average after: {load_average()}"
    metrics["load_average_after"] = os.getloadavg()[0]
    print("", sections["after"], sep="\n")
    if tracking_uri:
        params = {"profile": arguments.profile, "flow_profile": arguments.flow_profile}
        uri = log_to_mlflow(sections, metrics, params | {"data": arguments.data})
        print(f"Logged to {uri}, experiment {EXPERIMENT}")


if __name__ == "__main__":
    main()
