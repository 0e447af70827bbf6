"""Read every image exactly once per run: hash it, check it, and keep its pixels in memory.

The scan produces both the manifest table that the validation suite judges and the decoded,
resized RGB array that training, scattering and evaluation share, so no later stage opens a file.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from sklearn.model_selection import train_test_split

MANIFEST_COLUMNS = [
    "path",
    "label",
    "group",
    "width",
    "height",
    "mode",
    "bytes",
    "sha256",
    "readable",
]


@dataclass
class ImageSet:
    """Manifest rows and their pixels, aligned by position."""

    manifest: pd.DataFrame
    pixels: np.ndarray  # uint8, N x 3 x size x size; zeros where an image was unreadable

    @property
    def labels(self) -> np.ndarray:
        return self.manifest["label"].to_numpy(dtype=np.int64)

    @property
    def fingerprint(self) -> str:
        """Content hash of the data set: same images and labels, same fingerprint, any order."""
        lines = sorted(
            f"{s}:{lab}" for s, lab in zip(self.manifest["sha256"], self.labels, strict=True)
        )
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def subsample(table: pd.DataFrame, max_images: int | None, seed: int) -> pd.DataFrame:
    """A stratified, seeded subset, so quick profiles keep the class mix of the full set."""
    if max_images is None or len(table) <= max_images:
        return table.reset_index(drop=True)
    kept, _ = train_test_split(
        table, train_size=max_images, stratify=table["label"], random_state=seed
    )
    return kept.sort_index().reset_index(drop=True)


def in_content_order(images: ImageSet) -> ImageSet:
    """Rows sorted by content hash (then path), as the versioned dataset store keeps them.

    Seeded splits depend on row order; with one canonical order the same images get the same
    test split whether they come from a data folder or from a dataset version.
    """
    order = np.lexsort((images.manifest["path"].to_numpy(), images.manifest["sha256"].to_numpy()))
    return ImageSet(images.manifest.iloc[order].reset_index(drop=True), images.pixels[order])


def scan_images(table: pd.DataFrame, size: int) -> ImageSet:
    """Hash, decode and resize every listed image; unreadable ones are recorded, not raised.

    The validation suite names all bad files at once, which is more useful than stopping at the
    first. Grayscale, palette and RGBA images become RGB.
    """
    records = []
    pixels = np.zeros((len(table), 3, size, size), dtype=np.uint8)
    for index, path in enumerate(table["path"]):
        record, rgb = _scan_one(Path(path), size)
        records.append(record)
        if rgb is not None:
            pixels[index] = rgb
    manifest = pd.concat([table.reset_index(drop=True), pd.DataFrame(records)], axis=1)
    if "group" not in manifest or manifest["group"].isna().all():
        manifest["group"] = ""
    manifest["group"] = manifest["group"].fillna("").astype(str)
    extra = [column for column in manifest.columns if column not in MANIFEST_COLUMNS]
    return ImageSet(manifest=manifest[MANIFEST_COLUMNS + extra], pixels=pixels)


def _scan_one(path: Path, size: int) -> tuple[dict, np.ndarray | None]:
    record = {"width": -1, "height": -1, "mode": "", "bytes": -1, "sha256": "", "readable": False}
    try:
        content = path.read_bytes()
    except OSError:
        return record, None
    record["bytes"] = len(content)
    record["sha256"] = hashlib.sha256(content).hexdigest()
    try:
        with Image.open(io.BytesIO(content)) as image:
            image.load()
            record.update(width=image.width, height=image.height, mode=image.mode)
            rgb = to_rgb(image).resize((size, size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return record, None
    record["readable"] = True
    return record, np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGBA is composited on black (the study's background), so transparency never adds light."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return image.convert("RGB")
