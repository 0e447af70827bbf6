"""Which test images are explained, by which method, and their ground-truth glasses masks.

Three named images as in the seed study (one with glasses, one without, one with sunglasses),
plus a seeded sample of `xai.images_per_class` test images of each class for the statistics,
the classes interleaved so that every prefix of it (the randomisation check's images) is
balanced too: a sample that keeps the test split's mix, or takes its first images, can rest its
"mass on the glasses" on two glasses images. The named images come first in their class, so
every figure's image is also part of the numbers. The methods of `xai.sample_methods` explain
the whole sample and are checked (localisation, deletion, randomisation); the others explain
the named images alone, for the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from glasses.config import GlassesConfig, XAIConfig, XAIMethod
from glasses.data.images import ImageSet
from glasses.data.splits import Split, split_units

NAMED = ("glasses", "no glasses", "sunglasses")
CLASSES = {1: "glasses", 0: "no glasses"}  # label -> name, in the sample's interleaving order


@dataclass(frozen=True)
class ImageSelection:
    """The test images one XAI run explains, as manifest rows."""

    named: list[int]  # the figures' images, in `NAMED` order
    sample: np.ndarray  # the statistics' images, classes interleaved, the named ones first
    masks: dict[int, np.ndarray]  # the sample's non-empty ground-truth masks, by row
    settings: XAIConfig
    people: dict[int, int]  # every sample row's person (`split_units`): what intervals resample
    labels: dict[int, int]  # every sample row's class
    # 3 x H x W [0, 1] mean training image where it is the deletion baseline, else None
    training_mean: np.ndarray | None

    @property
    def counts(self) -> dict[str, int]:
        """Explained images per class, by class name: what the statistics rest on."""
        labels = [self.labels[int(row)] for row in self.sample]
        return {name: labels.count(label) for label, name in CLASSES.items()}

    def rows(self, method: XAIMethod) -> np.ndarray:
        """The images `method` explains: the sample if it is a sample method, else the named."""
        return self.sample if self.checked(method) else np.array(self.named)

    def checked(self, method: XAIMethod) -> bool:
        """Whether `method`'s maps are checked: those of the methods run on the whole sample."""
        return method in self.settings.sample_methods

    @property
    def randomisation_rows(self) -> np.ndarray:
        """The images the randomisation check explains again: the sample's first
        `xai.randomisation_images`."""
        return self.sample[: self.settings.randomisation_images]

    def randomisation_maps(self, maps: np.ndarray) -> np.ndarray:
        """The intact model's maps of `randomisation_rows`, from a checked method's maps of the
        sample."""
        return maps[: self.settings.randomisation_images]


def select_images(images: ImageSet, split: Split, config: GlassesConfig) -> ImageSelection:
    """The named images, the seeded sample and its masks, from the test images of `split`."""
    settings = config.xai
    test_rows = np.where(split.test)[0]
    named = named_rows(images.manifest, test_rows, settings.named_images)
    sample = sample_rows(images.labels, test_rows, named, settings.images_per_class, config.seed)
    masks = {
        int(row): mask
        for row, mask in zip(
            sample, load_masks(images.manifest, sample, config.data.image_size), strict=True
        )
        if mask is not None and mask.any()
    }
    units = split_units(images.manifest)
    mean = None
    if settings.deletion_baseline == "mean":
        training = np.flatnonzero(~split.test)
        mean = (images.pixels[training].mean(axis=0, dtype=np.float64) / 255).astype(np.float32)
    return ImageSelection(
        named,
        sample,
        masks,
        settings,
        people={int(row): int(units[row]) for row in sample},
        labels={int(row): int(images.labels[row]) for row in sample},
        training_mean=mean,
    )


def named_rows(manifest: pd.DataFrame, test_rows: np.ndarray, names: tuple[str, ...]) -> list[int]:
    """The configured file names if given, else the first test image of each kind.

    Without a `glasses_kind` column (or without sunglasses) the third image is simply a second
    glasses image.
    """
    test = manifest.iloc[test_rows]
    if names:
        by_name = {Path(p).name: row for p, row in zip(test["path"], test_rows, strict=True)}
        missing = [name for name in names if name not in by_name]
        if missing:
            raise ValueError(f"xai.named_images not in the test split: {', '.join(missing)}")
        return [int(by_name[name]) for name in names]
    glasses = test_rows[test["label"].to_numpy() == 1]
    no_glasses = test_rows[test["label"].to_numpy() == 0]
    kinds = test["glasses_kind"].astype(str).to_numpy() if "glasses_kind" in test else None
    if kinds is not None and (kinds == "sunglasses").any():
        sunglasses = test_rows[kinds == "sunglasses"]
        clear = glasses[~np.isin(glasses, sunglasses)]
        first_glasses = clear[0] if len(clear) else glasses[0]
        return [int(first_glasses), int(no_glasses[0]), int(sunglasses[0])]
    return [int(glasses[0]), int(no_glasses[0]), int(glasses[min(1, len(glasses) - 1)])]


def sample_rows(
    labels: np.ndarray, test_rows: np.ndarray, leading: list[int], per_class: int, seed: int
) -> np.ndarray:
    """`per_class` test rows of each class (all of a class that has fewer), glasses first, the
    classes alternating; within a class, its `leading` rows first (kept even beyond
    `per_class`), then a seeded draw of the others."""
    rng = np.random.default_rng(seed)
    queues = []
    for label in CLASSES:
        first = [int(row) for row in leading if labels[row] == label]
        pool = test_rows[(labels[test_rows] == label) & ~np.isin(test_rows, leading)]
        drawn = rng.permutation(pool).tolist()
        queues.append((first + drawn)[: max(per_class, len(first))])
    interleaved = [row for pair in zip_longest(*queues) for row in pair if row is not None]
    return np.array(interleaved, dtype=np.int64)


def load_masks(manifest: pd.DataFrame, rows: np.ndarray, size: int) -> list[np.ndarray | None]:
    """Binary size x size masks where the data has them (synthetic glasses images), else None."""
    if "mask_path" not in manifest:
        return [None] * len(rows)
    masks: list[np.ndarray | None] = []
    for path in manifest["mask_path"].iloc[rows]:
        if not isinstance(path, str) or not path:
            masks.append(None)
            continue
        with Image.open(path) as mask:
            resized = mask.convert("L").resize((size, size), Image.Resampling.NEAREST)
        masks.append(np.asarray(resized) > 127)
    return masks
