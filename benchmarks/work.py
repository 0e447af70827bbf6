"""The training work a profile asks for, stage by stage, and how long it takes at the GEMM floor.

A stage's floor is its FLOPs (trainings x steps x batch x FLOPs per training image) over the
fastest GEMM rate measured in the same run, on all cores: the time no implementation on this
machine can beat. Set beside the measured stage times, it says where a profile's wall time goes
and how much of it is left to win (augmentation, evaluation and logging are not in the floor).
Counts are at the step budget; with early stopping (`patience` > 0) trainings may stop sooner,
so the floor is an upper bound of the work then.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from glasses.config import GlassesConfig
from glasses.families import FAMILIES, SPECS, Family
from glasses.outer import budget_sizes
from glasses.sweep import sweep_config, sweep_sizes


@dataclass(frozen=True)
class StageWork:
    stage: str  # as the flow names it (`stage_<name>_seconds`)
    family: Family
    trainings: int
    steps: int  # optimiser steps, all trainings together
    images: int  # training images through forward and backward, all trainings together
    gflop: float

    def floor_seconds(self, gflops: float) -> float:
        return self.gflop / gflops


def training_work(
    config: GlassesConfig, n_train: int, gflop_per_image: dict[Family, float]
) -> list[StageWork]:
    """Cross-validation (one training per fold), refit (one), the outer splits (one per split)
    and sweep (one per size and repeat, plus the budget check's trainings at their multiples of
    the step budget) of each family, on training parts of about `n_train` images; with early
    stopping the outer splits and sweep points train twice (the probe that picks the steps,
    then the refit on all rows). Every training is counted, as in a run without resume (with
    it, the sweep's whole-part draws are the outer splits' trainings, reused)."""
    swept = sweep_config(config)
    sizes = sweep_sizes(config, n_train) if config.sweep.enabled else []
    checked = budget_sizes(config, sizes)
    budget_draws = min(config.sweep.budget_repeats, config.sweep.repeats) * len(checked)
    sweep_trainings = len(sizes) * config.sweep.repeats
    budgets = [1.0] * sweep_trainings + [
        factor for factor in config.sweep.budget_factors for _ in range(budget_draws)
    ]
    splits = config.split.folds * config.split.outer
    work = []
    for family in FAMILIES:
        spec = SPECS[family]
        for stage, stage_config, multiples in (
            ("cross_validation", config, [1.0] * config.split.folds),
            ("refit", config, [1.0]),
            ("outer", config, [1.0] * splits),
            ("sweep", swept, budgets),
        ):
            optimiser = spec.optimiser(stage_config)
            twice = 2 if optimiser.patience and stage in ("outer", "sweep") else 1
            steps = sum(round(optimiser.steps * m) for m in multiples) * twice
            images = steps * optimiser.batch_size
            trainings = len(multiples) * twice
            work.append(
                StageWork(stage, family, trainings, steps, images, images * gflop_per_image[family])
            )
    return work


def work_table(work: list[StageWork], measured: dict[str, float], gflops: float) -> pd.DataFrame:
    """Per stage, both families together: trainings, TFLOP, seconds at the floor, the measured
    seconds and their ratio (how far the stage is from the machine's limit)."""
    stages = list(dict.fromkeys(w.stage for w in work))
    table = pd.DataFrame(
        {
            "trainings": [sum(w.trainings for w in work if w.stage == s) for s in stages],
            "TFLOP": [sum(w.gflop for w in work if w.stage == s) / 1e3 for s in stages],
        },
        index=pd.Index(stages, name="stage"),
    )
    table["floor s"] = table["TFLOP"] * 1e3 / gflops
    table["measured s"] = [measured.get(stage, float("nan")) for stage in stages]
    table["measured / floor"] = table["measured s"] / table["floor s"]
    return table


def gap_table(
    table: pd.DataFrame,
    work: list[StageWork],
    cores_busy: dict[str, float],
    step_ms: dict[Family, float],
    cores: int,
) -> pd.DataFrame:
    """Why each stage of `work_table`'s `table` is `measured / floor` away from its floor, as
    three measured factors whose product is that ratio:

    - **step / floor**: the stage's steps, each at the time one step takes alone on one thread
      (`step_ms`, `benchmarks.step_parts`), spread over the flow's `cores` with none idle,
      against the floor: what the kernels, the augmentation and the rest of a step cost;
    - **CPU / steps alone**: the CPU time the stage spent (its wall time x `cores_busy`, the
      flow's own metric) against those steps alone: trainings slowed by a neighbour on the
      other core (memory bandwidth, a shared cache), and work between the steps (checks,
      scores, set-up, logging);
    - **cores / cores busy**: cores that waited (trainings of unequal length, a last task
      alone, waits on the store).
    """
    stages = table.index
    alone = pd.Series(
        [
            sum(w.steps * step_ms[w.family] for w in work if w.stage == stage) / 1e3 / cores
            for stage in stages
        ],
        index=stages,
    )
    busy = pd.Series({stage: cores_busy.get(stage, float("nan")) for stage in stages})
    cpu = table["measured s"] * busy
    return pd.DataFrame(
        {
            "floor s": table["floor s"],
            "steps alone s": alone,
            "step / floor": alone / table["floor s"],
            "CPU s": cpu,
            "CPU / steps alone": cpu / (alone * cores),
            "cores busy": busy,
            "cores / cores busy": cores / busy,
            "measured / floor": table["measured / floor"],
        },
        index=stages,
    )
