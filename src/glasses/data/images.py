"""Read every image exactly once per run: hash it, check it, and keep its pixels in memory.

The scan produces both the manifest table that the validation suite judges and the decoded,
resized RGB array that training, scattering and evaluation share, so no later stage opens a file.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
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
    "problem",
]
MISSING = "missing"  # the `problem` of a listed file that does not exist
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_SIXTEEN_BIT_MAX = 65535


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
        """`fingerprint` of the manifest's hashes and labels."""
        return fingerprint(self.manifest["sha256"], self.labels)


def fingerprint(sha256: Iterable[str], labels: Iterable[int]) -> str:
    """Content hash of a labelled image set: same images and labels, same fingerprint, any order.

    Every row counts, so two copies of an image (which weigh twice in training) differ from one;
    the dataset store keeps one copy per content, so its version ids are this hash too.
    """
    lines = sorted(f"{s}:{int(label)}" for s, label in zip(sha256, labels, strict=True))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def label_conflicts(table: pd.DataFrame) -> list[str]:
    """One sentence per image content listed with different labels, naming every file.

    No split can keep such a set honest (the copies are one unit, so they land on one side with
    two answers), so both the validation suite and the dataset store refuse it.
    """
    conflicting = table[table["sha256"].isin(conflicting_hashes(table))]
    return [
        ", ".join(
            f"{p} (label {label})" for p, label in zip(same["path"], same["label"], strict=True)
        )
        + " hold the same image with different labels"
        for _, same in conflicting.groupby("sha256")
    ]


def conflicting_hashes(table: pd.DataFrame) -> set[str]:
    """Content hashes that `table` lists with more than one label (unhashed rows ignored)."""
    hashed = table[table["sha256"].notna() & (table["sha256"].astype(str) != "")]
    labels = hashed.groupby("sha256")["label"].nunique()
    return set(labels.index[labels > 1])


def subsample(table: pd.DataFrame, max_images: int | None, seed: int) -> pd.DataFrame:
    """A stratified, seeded subset, so quick profiles keep the class mix of the full set."""
    if max_images is None or len(table) <= max_images:
        return table.reset_index(drop=True)
    surplus = len(table) - max_images
    if surplus < table["label"].nunique():
        # sklearn's stratified split needs every class on the dropped side too.
        kept = table.drop(index=_fewest_drops(table["label"], surplus, seed))
    else:
        kept, _ = train_test_split(
            table, train_size=max_images, stratify=table["label"], random_state=seed
        )
    return kept.sort_index().reset_index(drop=True)


def _fewest_drops(labels: pd.Series, count: int, seed: int) -> list:
    """`count` (fewer than the classes) index labels to drop, one each from the largest classes,
    seeded: what a stratified split of so few rows amounts to."""
    rng = np.random.default_rng(seed)
    sizes = labels.value_counts()  # largest first
    return [rng.choice(labels.index[labels == label]) for label in sizes.index[:count]]


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
    except FileNotFoundError:
        return record | {"problem": MISSING}, None
    except OSError as error:
        return record | {"problem": f"cannot be read ({error.strerror})"}, None
    record["bytes"] = len(content)
    record["sha256"] = hashlib.sha256(content).hexdigest()
    try:
        with Image.open(io.BytesIO(content)) as image:
            image.load()
            record.update(width=image.width, height=image.height, mode=image.mode)
            rgb = to_rgb(image).resize((size, size), Image.Resampling.BILINEAR)
    except UnsupportedPixels as error:
        return record | {"problem": str(error)}, None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return record | {"problem": "does not decode as an image"}, None
    record.update(readable=True, problem="")
    return record, np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


class UnsupportedPixels(ValueError):
    """An image whose pixel values have no known range, so no 8-bit conversion is right."""


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB as the models see it.

    RGBA is composited on black (the study's background), so transparency never adds light.
    16-bit grey (`I;16*`, and `I`, which Pillow uses for 16-bit PNG and PGM) is scaled by
    255 / 65535; Pillow's own conversion would clip it, turning most images white.
    """
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > _SIXTEEN_BIT_MAX):
            raise UnsupportedPixels(
                f"{image.mode} pixels outside 0..{_SIXTEEN_BIT_MAX}; save it as 8- or 16-bit"
            )
        grey = np.rint(values * (255 / _SIXTEEN_BIT_MAX)).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "F":
        raise UnsupportedPixels(
            "floating-point pixels have no fixed range; save it as 8- or 16-bit"
        )
    return image.convert("RGB")
