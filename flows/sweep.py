"""The study's outer stages: the main comparison and the shrinking-dataset sweep, both trained
and scored on the outer splits (`glasses.outer`)."""

from __future__ import annotations

from flows.concurrency import run_concurrently
from glasses.config import GlassesConfig
from glasses.data.reference import DataRef
from glasses.data.splits import Split
from glasses.families import FAMILIES
from glasses.fitting import in_stacks
from glasses.outer import PointPlan, comparison_plan, sweep_plan, sweep_sizes_kept
from glasses.statistics import OuterDesign, SweepInference
from tasks.outer import OuterPoint, outer_points, summarise_outer
from tasks.sweep import filter_figures, summarise_sweep


def _points(
    plans: list[PointPlan], config: GlassesConfig, data: DataRef, design: OuterDesign
) -> list[OuterPoint]:
    """Both families at every plan, concurrently, in plan order: each task gets as many plans
    as train together (`glasses.fitting.in_stacks`), the longest tasks submitted first."""
    calls = []
    for family in FAMILIES:
        for chunk in in_stacks(family, config, plans):
            tests = [design.test_mask(plan.outer) for plan in chunk]
            call = {"family": family, "plans": chunk, "config": config, "data": data}
            calls.append(call | {"tests": tests})
    done = run_concurrently(outer_points, calls, config, cost=lambda call: len(call["plans"]))
    trained = {
        (call["family"], id(plan)): point
        for call, points in zip(calls, done, strict=True)
        for plan, point in zip(call["plans"], points, strict=True)
    }
    return [trained[family, id(plan)] for plan in plans for family in FAMILIES]


def compare(
    config: GlassesConfig,
    data: DataRef,
    design: OuterDesign,
    family_runs: dict[str, str],
    run_id: str,
) -> SweepInference:
    """Each family trained on every outer split's training part and scored on its test part;
    logs into the family runs and `run_id` (the `outer` child run)."""
    points = _points(comparison_plan(design), config, data, design)
    return summarise_outer(points, design, config, family_runs, run_id)


def sweep(
    config: GlassesConfig,
    data: DataRef,
    design: OuterDesign,
    split: Split,
    versions: dict[str, str],
    run_id: str,
) -> str:
    """Logs into `run_id` (the `sweep` child run); returns the one-line verdict. The filter
    figures show the registered `versions` (by family) on the held-out split of `split`."""
    points = _points(sweep_plan(config, design), config, data, design)
    dropped = sweep_sizes_kept(config, design)[1]
    line = summarise_sweep(points, design, dropped, config, run_id)
    print(line)
    filter_figures(versions, data, split, config, run_id)
    return line
