"""Where the XAI stage's time goes: its library calls at a profile's sizes, part by part.

Both families, untrained (seeded weights, scattering standardisation fitted on the images), on
synthetic faces: every method on the images the stage gives it (the sample, or the three named
images), the cascading randomisation check of every checked method, and the localisation and
deletion scores. One process, one model at a time, so the parts add up to the stage's work
without its concurrency; seconds per part go to stdout as a markdown table.

    python -m benchmarks.xai_parts [--profile quick] [--threads 1] [--families scatnet]
        [--methods lime shap]
"""

from __future__ import annotations

from glasses.entrypoint import prepare_process

prepare_process()  # before torch loads

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.ig_precision import synthetic_set  # noqa: E402
from glasses.config import GlassesConfig, resolve_config  # noqa: E402
from glasses.families import FAMILIES  # noqa: E402
from glasses.fitting import build_model  # noqa: E402
from glasses.tables import markdown_table  # noqa: E402
from glasses.training import pixels_to_input  # noqa: E402
from glasses.xai import selection  # noqa: E402
from glasses.xai.correctness import (  # noqa: E402
    cascading_randomisation,
    deletion_evidence,
    deletion_fill,
    localisation_evidence,
)
from glasses.xai.methods import METHODS, explain  # noqa: E402

# The stage's named images: what the methods outside `xai.sample_methods` explain.
NAMED = len(selection.NAMED)


def _maps(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, method, settings, seed
) -> np.ndarray:
    return explain(model, images, targets, method, settings, seed).maps


def _models(
    config: GlassesConfig, pixels: torch.Tensor, families: list[str]
) -> dict[str, nn.Module]:
    models = {}
    for family in families:
        model = build_model(family, config, config.seed).eval()
        if family == "scatnet":
            with torch.no_grad():
                model.fit_standardisation(model.coefficients(pixels))
        models[family] = model
    return models


def measure(
    config: GlassesConfig, cache: Path, families: list[str], methods: list[str]
) -> pd.DataFrame:
    """CPU and wall seconds of every part, by (part, family, method). CPU seconds (of this
    process, all its threads) are what to compare on a shared machine, whose load stretches
    the wall time."""
    settings = config.xai
    count = 2 * settings.images_per_class
    raw, labels = synthetic_set(config, count, cache)
    images, targets = pixels_to_input(torch.from_numpy(raw)), torch.from_numpy(labels).long()
    checked = settings.randomisation_images
    people = dict.fromkeys(range(count), 0)
    classes = {row: int(label) for row, label in enumerate(labels)}
    height, width = images.shape[-2:]
    mask = np.zeros((height, width), dtype=bool)
    mask[height // 3 : height // 2, width // 5 : 4 * width // 5] = True  # where glasses sit
    masks = dict.fromkeys(range(count), mask)
    fills = torch.stack([deletion_fill(image, settings.deletion_baseline) for image in images])
    rows = []

    def timed(part: str, family: str, method: str, call: Callable[..., Any], *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = call(*args, **kwargs)
        rows.append({"part": part, "family": family, "method": method,
                     "cpu_s": time.process_time() - cpu,
                     "wall_s": time.perf_counter() - wall})  # fmt: skip
        return result

    every = np.arange(count)
    for family, model in _models(config, images, families).items():
        for method in methods:
            sample = method in settings.sample_methods
            shown = slice(None) if sample else slice(NAMED)
            explained = timed("explain", family, method, explain, model, images[shown],
                              targets[shown], method, settings, config.seed)  # fmt: skip
            if not sample:
                continue
            maps = explained.maps
            again = partial(_maps, method=method, settings=settings, seed=config.seed)
            timed("randomisation", family, method, cascading_randomisation, model, again,
                  images[:checked], targets[:checked], config.seed, original=maps[:checked],
                  reuse_mb=settings.scattering_memory_mb)  # fmt: skip
            timed("localisation", family, method, localisation_evidence, every, maps, masks,
                  people, classes, seed=config.seed)  # fmt: skip
            timed("deletion", family, method, deletion_evidence, model, images, targets, maps,
                  fills, every, people, classes, steps=settings.deletion_steps,
                  seed=config.seed)  # fmt: skip
    return pd.DataFrame(rows)


def summary(parts: pd.DataFrame) -> pd.DataFrame:
    """CPU seconds by part and family, with totals."""
    table = parts.pivot_table("cpu_s", "part", "family", aggfunc="sum", sort=False)
    table["both"] = table.sum(axis=1)
    table.loc["total"] = table.sum()
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    config = resolve_config(arguments.profile)
    with tempfile.TemporaryDirectory() as cache:
        parts = measure(config, Path(cache), arguments.families, arguments.methods)
    print(f"\nXAI stage parts ({arguments.profile}, {arguments.threads} thread(s))\n")
    print(markdown_table(parts.set_index(["part", "family", "method"])))
    print()
    print(markdown_table(summary(parts)))


if __name__ == "__main__":
    main()
