"""Sub-flow `glasses-sweep`: shrinking training sets, both families, same fixed test split."""

from __future__ import annotations

import torch
from prefect import flow
from torch import nn

from flows.concurrency import run_concurrently
from glasses.config import GlassesConfig
from glasses.crossval import FAMILIES
from glasses.data.images import ImageSet
from glasses.data.splits import Split
from glasses.metrics import majority_baseline
from tasks.sweep import filter_figures, summarise_sweep, sweep_point, sweep_sizes


@flow(name="glasses-sweep", log_prints=True)
def sweep(
    config: GlassesConfig,
    images: ImageSet,
    split: Split,
    coefficients: torch.Tensor,
    cnn: nn.Module,
    run_id: str,
) -> str:
    """Logs into `run_id` (the `sweep` child run); returns the one-line verdict."""
    inputs = {"cnn": torch.from_numpy(images.pixels), "scatnet": coefficients}
    calls = [
        {
            "family": family,
            "size": size,
            "repeat": repeat,
            "config": config,
            "images": images,
            "inputs": inputs[family],
            "split": split,
        }
        for size in sweep_sizes(config, split)
        for repeat in range(config.sweep.repeats)
        for family in FAMILIES
    ]
    points = run_concurrently(sweep_point, calls, config)
    test_labels = images.labels[split.test]
    baseline = majority_baseline(images.labels[~split.test], test_labels)
    line = summarise_sweep(points, test_labels, baseline, config, run_id)
    filter_figures(cnn, images, split, coefficients, config, run_id)
    print(line)
    return line
