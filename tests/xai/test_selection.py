"""Which test images are explained, and their masks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from glasses.xai.selection import load_masks, named_rows, sample_rows


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


def test_sample_leads_with_named_rows_and_keeps_the_class_mix():
    labels = np.array([1] * 60 + [0] * 40)
    test_rows = np.arange(100)
    sample = sample_rows(labels, test_rows, [5, 70, 6], 20, seed=1)
    assert sample[:3].tolist() == [5, 70, 6]
    assert len(sample) == 20 and len(set(sample.tolist())) == 20
    assert abs(labels[sample].mean() - 0.6) <= 0.1
    assert (
        sample_rows(labels, test_rows, [5], 20, seed=1).tolist()
        == sample_rows(labels, test_rows, [5], 20, seed=1).tolist()
    )


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
