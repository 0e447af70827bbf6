"""Which test images are explained, and their masks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from glasses.config import resolve_config
from glasses.data.images import ImageSet
from glasses.data.splits import Split
from glasses.xai.selection import load_masks, named_rows, sample_rows, select_images


def _manifest(kinds: list[str]) -> pd.DataFrame:
    labels = [0 if kind == "none" else 1 for kind in kinds]
    paths = [f"/data/img{i:02d}.png" for i in range(len(kinds))]
    return pd.DataFrame({"path": paths, "label": labels, "glasses_kind": kinds})


def test_named_images_are_clear_glasses_no_glasses_and_sunglasses():
    manifest = _manifest(["sunglasses", "none", "round", "none", "sunglasses", "round"])
    rows = named_rows(manifest, np.arange(6), ())
    assert [manifest["glasses_kind"][r] for r in rows] == ["round", "none", "sunglasses"]


def test_without_kinds_the_third_image_is_another_glasses_image():
    manifest = _manifest(["round", "none", "round"]).drop(columns="glasses_kind")
    assert named_rows(manifest, np.arange(3), ()) == [0, 1, 2]


def test_configured_names_win_and_unknown_names_are_named():
    manifest = _manifest(["round", "none", "round", "none"])
    assert named_rows(manifest, np.arange(4), ("img02.png", "img03.png", "img00.png")) == [2, 3, 0]
    with pytest.raises(ValueError, match="img09.png"):
        named_rows(manifest, np.arange(4), ("img09.png",))


def test_sample_takes_each_class_alike_interleaved_with_the_named_rows_first():
    """A test split of 90 % no-glasses images still gives half and half, and every prefix (the
    randomisation check's images) alternates the classes."""
    labels = np.array([1] * 10 + [0] * 90)
    test_rows = np.arange(100)
    sample = sample_rows(labels, test_rows, [5, 70, 6], 8, seed=1)
    assert sample[:3].tolist() == [5, 70, 6]
    assert len(sample) == 16 and len(set(sample.tolist())) == 16
    assert labels[sample].tolist() == [1, 0] * 8
    assert sample_rows(labels, test_rows, [5], 8, seed=1).tolist() == (
        sample_rows(labels, test_rows, [5], 8, seed=1).tolist()
    )
    assert sample_rows(labels, test_rows, [5], 8, seed=2).tolist() != (
        sample_rows(labels, test_rows, [5], 8, seed=1).tolist()
    )


def test_a_class_with_fewer_test_images_gives_all_it_has_and_the_other_continues():
    labels = np.array([1] * 3 + [0] * 20)
    sample = sample_rows(labels, np.arange(23), [], 5, seed=0)
    assert labels[sample].tolist() == [1, 0, 1, 0, 1, 0, 0, 0]
    assert sorted(sample[labels[sample] == 1].tolist()) == [0, 1, 2]


def test_masks_are_resized_binary_and_missing_where_there_is_none(tmp_path):
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[20:30, 10:50] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    manifest = pd.DataFrame({"mask_path": [str(tmp_path / "m.png"), ""]})
    first, second = load_masks(manifest, np.array([0, 1]), 32)
    assert first.shape == (32, 32) and first.dtype == bool
    assert first[12, 16] and not first[0, 0]
    assert first.sum() == pytest.approx(5 * 20, abs=10)
    assert second is None


def test_sample_methods_explain_the_sample_and_the_others_the_named_images(tmp_path):
    """Only test rows are chosen; masks are kept for sample images with a non-empty one; the
    randomisation check takes the sample's first images and their maps."""
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[20:30, 10:50] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    Image.fromarray(np.zeros_like(mask)).save(tmp_path / "empty.png")
    kinds = ["round", "none", "sunglasses", "none", "round", "none", "round", "none"] * 2
    manifest = _manifest(kinds).assign(mask_path="", group=[f"p{i % 5}" for i in range(16)])
    manifest.loc[[2, 4], "mask_path"] = str(tmp_path / "m.png")
    manifest.loc[6, "mask_path"] = str(tmp_path / "empty.png")
    test = np.arange(16) < 8
    config = resolve_config(
        "tiny",
        {"xai": {"sample_methods": ("ig", "lime"), "images_per_class": 3,
                 "randomisation_images": 2}},
    )  # fmt: skip
    images = ImageSet(manifest, np.zeros((16, 3, 32, 32), dtype=np.uint8))
    selection = select_images(images, Split(test, np.where(test, -1, 0)), config)
    assert selection.named == [0, 1, 2]
    assert selection.sample[:3].tolist() == [0, 1, 2] and len(selection.sample) == 6
    assert test[selection.sample].all()
    assert selection.counts == {"glasses": 3, "no glasses": 3}
    assert selection.labels == {int(r): int(manifest["label"][r]) for r in selection.sample}
    assert selection.people == {int(r): int(r) % 5 for r in selection.sample}  # p0…p4 in order
    assert selection.training_mean is None  # blur is the default deletion baseline
    assert set(selection.masks) == {2, 4} & set(selection.sample.tolist())
    for method in ("ig", "lime"):
        assert selection.checked(method)
        assert selection.rows(method) is selection.sample
    for method in ("ig_random", "ig_captum", "ig_captum_random", "shap"):
        assert not selection.checked(method)
        assert selection.rows(method).tolist() == [0, 1, 2]
    maps = np.arange(6)[:, None, None] * np.ones((6, 4, 4))
    assert selection.randomisation_rows.tolist() == selection.sample[:2].tolist()
    np.testing.assert_array_equal(selection.randomisation_maps(maps), maps[:2])


def test_the_training_mean_is_kept_where_it_is_the_deletion_baseline():
    manifest = _manifest(["round", "none"] * 4)
    pixels = np.zeros((8, 3, 4, 4), dtype=np.uint8)
    pixels[4:] = 255  # the training half is white, the test half black
    test = np.arange(8) < 4
    config = resolve_config("tiny", {"xai": {"deletion_baseline": "mean"}})
    split = Split(test, np.where(test, -1, 0))
    selection = select_images(ImageSet(manifest, pixels), split, config)
    assert selection.training_mean.shape == (3, 4, 4)
    np.testing.assert_allclose(selection.training_mean, 1.0)
