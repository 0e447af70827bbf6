"""The ScatNet head's training time against the GEMM floor: one training at a time through
autograd and torch's SGD (the loop the CNN still uses, and the ScatNet's before `glasses.heads`),
then through `glasses.heads` alone and in stacks. All in one process, beside the floor measured
in the same run, so the ratios compare like for like on a shared machine.

    python -m benchmarks.stacked_heads [--profile quick] [--stacks 1 4 8] [--threads 1]
"""

from __future__ import annotations

from glasses.entrypoint import prepare_process

prepare_process()  # before torch loads

import argparse  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from benchmarks.floor import floor_ms, gemm_gflops  # noqa: E402
from benchmarks.training_cost import WINDOWS, PlainLoop, per_image_ms, random_inputs  # noqa: E402
from glasses.config import GlassesConfig, resolve_config  # noqa: E402
from glasses.fitting import build_model  # noqa: E402
from glasses.heads import HeadTraining, train_heads  # noqa: E402
from glasses.tables import markdown_table  # noqa: E402
from glasses.training import Check, Rows, train_steps  # noqa: E402

CPU = torch.device("cpu")
CHECK_EVERY = 10  # steps per timed window


def _setup(config: GlassesConfig, count: int):
    """`count` ScatNets (standardisation fitted) and their training rows, on shared inputs."""
    optimiser = config.scatnet.optimiser.model_copy(update={"check_every": CHECK_EVERY})
    inputs, labels = random_inputs("scatnet", config, rows=4 * optimiser.batch_size)
    rows = Rows.of(inputs, labels, np.arange(len(inputs)))
    models = []
    for seed in range(count):
        model = build_model("scatnet", config, seed)
        model.fit_standardisation(inputs, rows.index)
        models.append(model)
    return models, rows, optimiser


def autograd_ms(config: GlassesConfig) -> float:
    """ms per image of one training through `train_steps` (autograd, torch's SGD)."""
    (model,), rows, optimiser = _setup(config, 1)
    stamps: list[tuple[int, float]] = []
    train_steps(
        model, model.classify, rows, lambda batch, _: batch, optimiser, 0,
        steps=CHECK_EVERY * (WINDOWS + 1), device=CPU,
        on_check=lambda check: stamps.append((check.step, time.perf_counter())),
    )  # fmt: skip
    return per_image_ms(stamps, optimiser.batch_size)


def stacked_ms(config: GlassesConfig, count: int) -> float:
    """ms per image per training of `count` trainings stacked by `glasses.heads`."""
    models, rows, optimiser = _setup(config, count)
    stamps: list[tuple[int, float]] = []

    def stamp(check: Check) -> None:
        stamps.append((check.step, time.perf_counter()))

    trainings = [  # the first one's checks time them all: they step together
        HeadTraining(model, rows, seed, CHECK_EVERY * (WINDOWS + 1), None, None if seed else stamp)
        for seed, model in enumerate(models)
    ]
    train_heads(trainings, optimiser, CPU)
    return per_image_ms(stamps, optimiser.batch_size * count)


def floor_ratio(measure: Callable[[], float], flops_per_image: float) -> tuple[float, float]:
    """(ms / image, its ratio to the floor) of `measure`, the GEMM floor timed just before it
    each of two rounds and the lowest ratio kept: on a busy machine the floor moves with the
    load, so each time is set against the floor of its own minute."""
    results = []
    for _ in range(2):
        floor_rate = max(gemm_gflops(size=1024).values())
        took = measure()
        results.append((took / floor_ms(flops_per_image, floor_rate), took))
    ratio, took = min(results)
    return took, ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--stacks", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    config = resolve_config(arguments.profile)
    print(f"load average before: {os.getloadavg()}, {torch.get_num_threads()} torch threads")
    flops = PlainLoop.build("scatnet", config).flops_per_image()
    variants: dict[str, Callable[[], float]] = {
        "autograd, one at a time": lambda: autograd_ms(config)
    }
    for count in arguments.stacks:
        variants[f"glasses.heads, {count} stacked"] = partial(stacked_ms, config, count)
    measured = {name: floor_ratio(measure, flops) for name, measure in variants.items()}
    table = pd.DataFrame(
        {
            "ms / image": {name: took for name, (took, _) in measured.items()},
            "/ floor": {name: ratio for name, (_, ratio) in measured.items()},
        }
    ).rename_axis(f"ScatNet head, `{arguments.profile}`")
    print(f"head: {flops / 1e9:.3f} GFLOP / image (forward and backward)\n")
    print(markdown_table(table))
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
