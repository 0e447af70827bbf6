"""`scan_images`: each image read once, hashed, made RGB; bad files are recorded, not raised."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from glasses.data.images import (
    MANIFEST_COLUMNS,
    ImageSet,
    fingerprint,
    label_conflicts,
    scan_images,
    subsample,
)


def table_of(paths: list[Path], labels: list[int] | None = None) -> pd.DataFrame:
    labels = labels if labels is not None else [i % 2 for i in range(len(paths))]
    return pd.DataFrame({"path": [str(p) for p in paths], "label": labels})


def test_pixels_are_the_files_pixels_at_native_size(csv_data) -> None:
    table = csv_data.table.assign(path=[str(csv_data.root / p) for p in csv_data.table["path"]])
    images = scan_images(table, 32)
    assert images.pixels.shape == (len(table), 3, 32, 32)
    assert images.pixels.dtype == np.uint8
    for row in (0, 1, 7):
        expected = np.asarray(Image.open(table["path"][row]).convert("RGB")).transpose(2, 0, 1)
        np.testing.assert_array_equal(images.pixels[row], expected)
    assert images.manifest["readable"].all()
    assert (images.manifest["width"] == 32).all()
    assert (images.manifest["mode"] == "RGB").all()
    np.testing.assert_array_equal(images.labels, table["label"].to_numpy())
    assert images.manifest["group"].tolist() == table["group"].tolist()


@pytest.mark.parametrize("size", [16, 48])
def test_modes_become_rgb_of_the_configured_size(tmp_path, size) -> None:
    gray = tmp_path / "gray.png"
    Image.new("L", (20, 30), 128).save(gray)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (40, 24), (255, 0, 0, 128)).save(rgba)
    palette = tmp_path / "palette.png"
    Image.new("RGB", (33, 33), (0, 255, 0)).convert("P").save(palette)
    transparent = tmp_path / "palette_transparent.png"
    image = Image.new("P", (20, 20), 1)
    image.putpalette([0, 0, 0, 200, 200, 200] + [0] * (256 * 3 - 6))
    image.save(transparent, transparency=1)  # every pixel fully transparent

    images = scan_images(table_of([gray, rgba, palette, transparent]), size)
    manifest = images.manifest
    assert images.pixels.shape == (4, 3, size, size)
    assert manifest["readable"].all()
    assert manifest["mode"].tolist() == ["L", "RGBA", "P", "P"]
    assert manifest["width"].tolist() == [20, 40, 33, 20]
    assert manifest["height"].tolist() == [30, 24, 33, 20]
    # Grey is the same in all three channels.
    assert (images.pixels[0] == 128).all()
    # RGBA is composited on black: half-transparent red becomes dark red, never lighter.
    red = images.pixels[1].reshape(3, -1)
    assert np.all(np.abs(red[0].astype(int) - 128) <= 1)
    assert (red[1:] == 0).all()
    # Palette colours are expanded, not left as indices.
    assert (images.pixels[2][1] == 255).all() and (images.pixels[2][[0, 2]] == 0).all()
    # A transparent palette entry adds no light either.
    assert (images.pixels[3] == 0).all()


def test_bad_files_are_recorded_not_raised(tmp_path, csv_data) -> None:
    good = csv_data.file(0)
    truncated = tmp_path / "truncated.png"
    content = good.read_bytes()
    truncated.write_bytes(content[: len(content) // 2])
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    missing = tmp_path / "missing.png"

    images = scan_images(table_of([good, truncated, text, missing]), 32)
    manifest = images.manifest
    assert manifest["readable"].tolist() == [True, False, False, False]
    for row in (1, 2, 3):
        assert manifest.loc[row, "width"] == -1
        assert manifest.loc[row, "height"] == -1
        assert manifest.loc[row, "mode"] == ""
        assert (images.pixels[row] == 0).all()
    # Files that could be read are still hashed, so duplicates and leaks stay detectable.
    assert manifest.loc[1, "sha256"] == hashlib.sha256(truncated.read_bytes()).hexdigest()
    assert manifest.loc[2, "bytes"] == len("this is not an image")
    assert manifest.loc[3, "bytes"] == -1 and manifest.loc[3, "sha256"] == ""
    assert images.pixels[0].any()
    # The validation suite names each file with its own reason: a missing file is "missing".
    assert manifest["problem"].tolist()[1:] == ["does not decode as an image"] * 2 + ["missing"]
    assert manifest.loc[0, "problem"] == ""


def grey16(path: Path, values: np.ndarray, suffix: str = ".png") -> Path:
    target = path.with_suffix(suffix)
    Image.fromarray(values.astype(np.uint16)).save(target)
    return target


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path, suffix) -> None:
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32)
    path = grey16(tmp_path / "ramp", ramp, suffix)
    images = scan_images(table_of([path]), 32)
    assert images.manifest.loc[0, "readable"]
    expected = np.rint(ramp.astype(np.uint16) / 65535 * 255)
    for channel in images.pixels[0]:
        np.testing.assert_allclose(channel, expected, atol=1)  # Pillow's clip made 99 % white


def test_sixteen_bit_pgm_keeps_its_range(tmp_path) -> None:
    path = tmp_path / "dark.pgm"
    values = np.full((32, 32), 1000, dtype=">u2")
    path.write_bytes(b"P5\n32 32\n65535\n" + values.tobytes())
    pixels = scan_images(table_of([path]), 32).pixels[0]
    assert (pixels == round(1000 * 255 / 65535)).all()  # 4: dark stays dark


def test_floating_point_pixels_are_rejected_with_a_reason(tmp_path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.ones((32, 32), dtype=np.float32)).save(path)
    manifest = scan_images(table_of([path]), 32).manifest
    assert not manifest.loc[0, "readable"]
    assert "floating-point pixels" in manifest.loc[0, "problem"]


def test_sha256_and_size_of_every_file(csv_data) -> None:
    paths = [csv_data.file(row) for row in range(6)]
    manifest = scan_images(table_of(paths), 32).manifest
    for path, digest, size in zip(paths, manifest["sha256"], manifest["bytes"], strict=True):
        content = path.read_bytes()
        assert digest == hashlib.sha256(content).hexdigest()
        assert size == len(content)


def test_manifest_columns_and_groups(tmp_path, csv_data) -> None:
    table = table_of([csv_data.file(0), csv_data.file(1)]).assign(extra=["a", "b"])
    manifest = scan_images(table, 32).manifest
    assert manifest.columns.tolist() == MANIFEST_COLUMNS + ["extra"]
    assert manifest["group"].tolist() == ["", ""]  # no group column: empty, not NaN

    table = table.assign(group=["p1", np.nan])
    assert scan_images(table, 32).manifest["group"].tolist() == ["p1", ""]


def test_scan_leaves_the_callers_table_alone(csv_data) -> None:
    table = table_of([csv_data.file(0), csv_data.file(1)])
    before = table.copy()
    scan_images(table, 32)
    pd.testing.assert_frame_equal(table, before)


@pytest.fixture
def scanned(csv_data) -> ImageSet:
    table = csv_data.table.assign(path=[str(csv_data.root / p) for p in csv_data.table["path"]])
    return scan_images(table, 32)


def test_fingerprint_is_order_independent(scanned) -> None:
    order = np.random.default_rng(0).permutation(len(scanned.manifest))
    shuffled = ImageSet(scanned.manifest.iloc[order].reset_index(drop=True), scanned.pixels[order])
    assert shuffled.fingerprint == scanned.fingerprint
    assert len(scanned.fingerprint) == 16


def test_fingerprint_counts_every_copy_of_an_image() -> None:
    once = fingerprint(["aa", "bb"], [1, 0])
    assert fingerprint(["bb", "aa"], [0, 1]) == once
    assert fingerprint(["aa", "bb", "aa"], [1, 0, 1]) != once  # a copy weighs twice in training


def test_label_conflicts_name_every_copy() -> None:
    table = pd.DataFrame(
        {"path": ["/a.png", "/b.png", "/c.png", "/d.png"], "label": [1, 0, 1, 1]}
    ).assign(sha256=["x", "x", "y", "y"])
    assert label_conflicts(table) == [
        "/a.png (label 1), /b.png (label 0) hold the same image with different labels"
    ]


def test_fingerprint_changes_with_a_label_or_an_image(scanned) -> None:
    relabelled = scanned.manifest.copy()
    relabelled.loc[0, "label"] = 1 - relabelled.loc[0, "label"]
    assert ImageSet(relabelled, scanned.pixels).fingerprint != scanned.fingerprint

    fewer = scanned.manifest.iloc[1:].reset_index(drop=True)
    assert ImageSet(fewer, scanned.pixels[1:]).fingerprint != scanned.fingerprint


def labelled(n_ones: int, n_zeros: int) -> pd.DataFrame:
    labels = [1] * n_ones + [0] * n_zeros
    order = np.random.default_rng(1).permutation(len(labels))
    return pd.DataFrame(
        {"path": [f"/x/{i}.png" for i in range(len(labels))], "label": np.array(labels)[order]}
    )


def test_subsample_keeps_the_class_ratio_and_order() -> None:
    table = labelled(300, 100)
    kept = subsample(table, 80, seed=3)
    assert len(kept) == 80
    assert (kept["label"] == 1).sum() == 60
    assert kept.index.tolist() == list(range(80))
    # The original order is kept: paths stay in the table's order.
    positions = [int(Path(p).stem) for p in kept["path"]]
    original = {int(Path(p).stem): i for i, p in enumerate(table["path"])}
    assert [original[p] for p in positions] == sorted(original[p] for p in positions)


def test_subsample_is_seeded() -> None:
    table = labelled(300, 100)
    first = subsample(table, 80, seed=3)
    assert first.equals(subsample(table, 80, seed=3))
    assert not first["path"].equals(subsample(table, 80, seed=4)["path"])


@pytest.mark.parametrize(("ones", "zeros"), [(31, 30), (30, 31), (601, 600), (40, 21)])
def test_subsample_one_image_above_the_limit_drops_one_from_the_larger_class(ones, zeros) -> None:
    table = labelled(ones, zeros)
    kept = subsample(table, ones + zeros - 1, seed=5)  # sklearn: "test_size = 1 should be …"
    assert len(kept) == ones + zeros - 1
    larger = int(ones > zeros)
    assert (kept["label"] == larger).sum() == max(ones, zeros) - 1
    assert kept.equals(subsample(table, ones + zeros - 1, seed=5))
    assert set(kept["path"]) < set(table["path"])


@pytest.mark.parametrize("limit", [None, 400, 1000])
def test_subsample_without_effect_returns_everything(limit) -> None:
    table = labelled(300, 100)
    kept = subsample(table, limit, seed=0)
    assert kept.equals(table)
