"""The shrinking-dataset sweep stage: both families on shrinking training sets, same test split."""

from __future__ import annotations

from flows.concurrency import run_concurrently
from glasses.config import GlassesConfig
from glasses.data.reference import DataRef, image_set
from glasses.data.splits import Split
from glasses.families import FAMILIES
from glasses.metrics import majority_baseline
from glasses.sweep import sweep_sizes
from tasks.sweep import filter_figures, summarise_sweep, sweep_point


def sweep(config: GlassesConfig, data: DataRef, split: Split, cnn_version: str, run_id: str) -> str:
    """Logs into `run_id` (the `sweep` child run); returns the one-line verdict. The filter
    figures show the registered CNN `cnn_version`."""
    calls = [
        {
            "family": family,
            "size": size,
            "repeat": repeat,
            "config": config,
            "data": data,
            "split": split,
        }
        for size in sweep_sizes(config, split.train_count)
        for repeat in range(config.sweep.repeats)
        for family in FAMILIES
    ]
    points = run_concurrently(sweep_point, calls, config)
    labels = image_set(data).labels
    test_labels = labels[split.test]
    baseline = majority_baseline(labels[~split.test], test_labels)
    line = summarise_sweep(points, test_labels, baseline, config, run_id)
    filter_figures(cnn_version, data, split, config, run_id)
    print(line)
    return line
