"""Integrated Gradients in float32 against float64, on models trained at a profile's settings.

For each family and `xai.ig_dtype`: the agreement of the from-scratch IG with Captum's (one minus
the lowest per-image Pearson r of their attributions; the pipeline needs r >= 0.9999), the mean
completeness gap of the from-scratch IG, and the seconds both took. The evidence behind the
default of `xai.ig_dtype`.

    python -m benchmarks.ig_precision [--profile quick] [--images 10]
"""

from __future__ import annotations

from glasses.entrypoint import prepare_process

prepare_process()  # before torch loads

import argparse  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from glasses.config import GlassesConfig, resolve_config  # noqa: E402
from glasses.data.images import scan_images  # noqa: E402
from glasses.data.sources import load_source  # noqa: E402
from glasses.families import FAMILIES, SPECS, Family  # noqa: E402
from glasses.fitting import train_on  # noqa: E402
from glasses.scattering import compute_coefficients  # noqa: E402
from glasses.tables import markdown_table  # noqa: E402
from glasses.training import pixels_to_input  # noqa: E402
from glasses.xai.methods import METHODS, explain  # noqa: E402

DTYPES = ("float32", "float64")
# Each from-scratch IG and its Captum reference, by baseline.
PAIRS = {spec.absence: (name, spec.reference) for name, spec in METHODS.items() if spec.reference}


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each image's attributions (N x ...), compared in float64."""
    return np.array(
        [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b, strict=True)],
        dtype=np.float64,
    )


def synthetic_set(config: GlassesConfig, count: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 pixels and labels of `count` synthetic faces at the profile's image size."""
    data = config.data.model_copy(
        update={"synthetic_count": count, "synthetic_glasses": count // 2, "max_images": None}
    )
    images = scan_images(load_source("synthetic", data, cache, config.seed), data.image_size)
    return images.pixels, images.labels


def trained(family: Family, config: GlassesConfig, pixels: np.ndarray, labels: np.ndarray):
    """The family trained on all but the last rows for its profile budget, as the pipeline does."""
    inputs = torch.from_numpy(pixels)
    if SPECS[family].inputs == "coefficients":
        inputs = compute_coefficients(pixels, config.scatnet.J, config.scatnet.L)
    rows = np.arange(len(pixels))
    return train_on(family, config, inputs, torch.from_numpy(labels), rows, config.seed).model


def measure(config: GlassesConfig, images: int, count: int, cache: Path) -> pd.DataFrame:
    pixels, labels = synthetic_set(config, count + images, cache)
    test = pixels_to_input(torch.from_numpy(pixels[count:]))
    targets = torch.from_numpy(labels[count:]).long()
    rows = []
    for family in FAMILIES:
        model = trained(family, config, pixels[:count], labels[:count])
        for dtype in DTYPES:
            xai = config.xai.model_copy(update={"ig_dtype": dtype})
            for baseline, (scratch, captum) in PAIRS.items():
                ours = explain(model, test, targets, scratch, xai, config.seed)
                theirs = explain(model, test, targets, captum, xai, config.seed)
                rows.append(
                    {
                        "family": family,
                        "ig_dtype": dtype,
                        "baseline": baseline,
                        "1 - lowest pearson": f"{1 - pearson(ours.raw, theirs.raw).min():.1e}",
                        "mean completeness gap": float(np.mean(ours.gaps)),
                        "scratch s": ours.seconds,
                        "captum s": theirs.seconds,
                    }
                )
    return pd.DataFrame(rows).set_index(["family", "ig_dtype", "baseline"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--images", type=int, default=10, help="test images explained")
    parser.add_argument("--train-images", type=int, default=300)
    arguments = parser.parse_args()
    config = resolve_config(arguments.profile)
    with tempfile.TemporaryDirectory() as cache:
        table = measure(config, arguments.images, arguments.train_images, Path(cache))
    print(f"\nIG precision ({arguments.profile}, {arguments.images} test images)\n")
    print(markdown_table(table))


if __name__ == "__main__":
    main()
