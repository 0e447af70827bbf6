"""The study's outer stages: the main comparison and the shrinking-dataset sweep, both trained
and scored on the outer splits (`glasses.outer`)."""

from __future__ import annotations

from flows.concurrency import run_concurrently
from glasses.config import GlassesConfig
from glasses.data.reference import DataRef
from glasses.data.splits import Split
from glasses.families import FAMILIES
from glasses.outer import PointPlan, comparison_plan, sweep_plan, sweep_sizes_kept
from glasses.statistics import OuterDesign, SweepInference
from tasks.outer import OuterPoint, outer_point, summarise_outer
from tasks.sweep import filter_figures, summarise_sweep


def _points(
    plans: list[PointPlan], config: GlassesConfig, data: DataRef, design: OuterDesign
) -> list[OuterPoint]:
    """Both families at every plan, concurrently."""
    calls = [
        {
            "family": family,
            "plan": plan,
            "config": config,
            "data": data,
            "test": design.test_mask(plan.outer),
        }
        for plan in plans
        for family in FAMILIES
    ]
    return run_concurrently(outer_point, calls, config)


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
