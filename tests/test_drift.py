"""Drift: image descriptors, the reference-fitted embedding and Evidently's verdict on batches."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import uniform_filter
from sklearn.linear_model import LogisticRegression

from glasses.data.images import ImageSet, scan_images
from glasses.data.sources import read_manifest_csv
from glasses.data.synthetic import generate_synthetic
from glasses.drift import (
    SCORE_COLUMNS,
    DriftResult,
    Embedding,
    detect_drift,
    fit_embedding,
    image_descriptors,
    prediction_columns,
)
from glasses.scattering import compute_coefficients

SIZE, J, L = 32, 2, 4
DARKENING = 0.4
COLOUR_COLUMNS = ["brightness", "contrast", "r_mean", "r_std", "g_mean", "g_std", "b_mean",
                  "b_std", "colourfulness", "saturation", "sharpness"]  # fmt: skip


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drift detection must work without a network: any connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def image(red: float, green: float, blue: float, size: int = 8) -> np.ndarray:
    """One 3 x size x size uint8 image of a single colour, channels given in [0, 1]."""
    colour = np.array([red, green, blue]) * 255
    return np.broadcast_to(colour[:, None, None], (3, size, size)).round().astype(np.uint8)


# --------------------------------------------------------------------------- descriptors


def test_black_image_has_no_brightness_contrast_or_colour() -> None:
    row = image_descriptors(image(0, 0, 0)[None]).iloc[0]
    assert set(row.index) == set(COLOUR_COLUMNS)
    assert (row == 0).all()


def test_half_white_half_black_image() -> None:
    pixels = image(1, 1, 1)
    pixels[:, 4:] = 0
    row = image_descriptors(pixels[None]).iloc[0]
    assert row["brightness"] == pytest.approx(0.5, abs=1e-6)
    assert row["contrast"] == pytest.approx(0.5, abs=1e-6)
    assert row["r_std"] == pytest.approx(0.5, abs=1e-6)
    assert row["saturation"] == pytest.approx(0, abs=1e-6)  # grey levels only
    assert row["colourfulness"] == pytest.approx(0, abs=1e-6)


def test_pure_red_is_saturated_and_colourful_but_dim() -> None:
    row = image_descriptors(image(1, 0, 0)[None]).iloc[0]
    assert (row["r_mean"], row["g_mean"], row["b_mean"]) == pytest.approx((1, 0, 0))
    assert row["brightness"] == pytest.approx(0.299, abs=1e-6)  # red weighs little in luma
    assert row["saturation"] == pytest.approx(1)
    assert row["colourfulness"] > 0.3
    assert row["contrast"] == pytest.approx(0, abs=1e-6)


def test_blurring_lowers_sharpness() -> None:
    sharp = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32)).astype(np.uint8)
    blurred = uniform_filter(sharp.astype(float), size=(1, 3, 3)).round().astype(np.uint8)
    sharpness = image_descriptors(np.stack([sharp, blurred]))["sharpness"]
    assert sharpness[1] < 0.2 * sharpness[0]
    assert image_descriptors(image(0.3, 0.6, 0.9)[None])["sharpness"][0] == pytest.approx(0)


def test_each_row_depends_on_its_own_image_only() -> None:
    """Large batches are processed in blocks; block boundaries must not change any value."""
    pixels = np.random.default_rng(1).integers(0, 256, size=(1100, 3, 8, 8)).astype(np.uint8)
    batch = image_descriptors(pixels)
    for index in (0, 511, 512, 1099):
        alone = image_descriptors(pixels[index : index + 1])
        pd.testing.assert_frame_equal(batch.iloc[[index]].reset_index(drop=True), alone)


def test_file_sizes_become_columns_when_given() -> None:
    pixels = np.stack([image(0.1, 0.2, 0.3), image(0.5, 0.5, 0.5)])
    table = image_descriptors(pixels, widths=np.array([640, 32]), heights=np.array([480, 32]))
    assert table["width"].tolist() == [640, 32]
    assert table["height"].tolist() == [480, 32]
    with pytest.raises(ValueError, match="width: expected 2 values"):
        image_descriptors(pixels, widths=np.array([640]))
    with pytest.raises(ValueError, match="N x 3 x S x S"):
        image_descriptors(pixels[:, :1])


# --------------------------------------------------------------------------- embedding


@pytest.fixture(scope="module")
def noise_coefficients() -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(2)
    reference = rng.integers(0, 256, size=(40, 3, 16, 16)).astype(np.uint8)
    current = (rng.integers(0, 256, size=(10, 3, 16, 16)) * 0.5).astype(np.uint8)
    return compute_coefficients(reference, J, L), compute_coefficients(current, J, L)


def test_embedding_is_expressed_in_the_reference_basis(noise_coefficients) -> None:
    reference, current = noise_coefficients
    embedding = fit_embedding(reference, components=5)
    on_reference = embedding.transform(reference)
    assert list(on_reference.columns) == [f"emb_{index}" for index in range(5)]
    np.testing.assert_allclose(on_reference.mean(), 0, atol=1e-9)
    variances = on_reference.var().to_numpy()
    assert (np.diff(variances) <= 1e-9).all()  # principal components come in order
    # The current batch does not move the basis: it is projected, so its mean is not zero.
    assert embedding.transform(current).abs().mean().max() > 1
    pd.testing.assert_frame_equal(embedding.transform(reference), on_reference)


def test_embedding_accepts_arrays_and_tensors_alike(noise_coefficients) -> None:
    reference, current = noise_coefficients
    from_tensor = fit_embedding(reference, 3)
    from_array = fit_embedding(reference.numpy(), 3)
    np.testing.assert_allclose(from_tensor.basis, from_array.basis)
    pd.testing.assert_frame_equal(from_tensor.transform(current), from_array.transform(current))


def test_embedding_rejects_impossible_shapes(noise_coefficients) -> None:
    reference, _ = noise_coefficients
    with pytest.raises(ValueError, match="components must be in"):
        fit_embedding(reference[:4], components=8)
    embedding = fit_embedding(reference, 2)
    with pytest.raises(ValueError, match="same J, L and image size"):
        embedding.transform(reference[:, :, :5])


def test_prediction_columns_are_named_after_the_models() -> None:
    table = prediction_columns({"cnn": [0.1, 0.9], "scatnet": np.array([0.2, 0.7])})
    assert list(table.columns) == ["cnn_probability", "scatnet_probability"]
    assert table["scatnet_probability"].tolist() == [0.2, 0.7]
    with pytest.raises(ValueError, match="cnn: expected one probability per image"):
        prediction_columns({"cnn": np.zeros((2, 2))})


# --------------------------------------------------------------------------- drift on batches


def synthetic_set(root: Path, count: int, seed: int) -> ImageSet:
    labels = generate_synthetic(root, count, count // 2, SIZE, seed)
    return scan_images(read_manifest_csv(labels), SIZE)


Table = Callable[[ImageSet, np.ndarray], pd.DataFrame]


@pytest.fixture(scope="module")
def reference_set(tmp_path_factory: pytest.TempPathFactory) -> ImageSet:
    return synthetic_set(tmp_path_factory.mktemp("drift") / "reference", 180, seed=21)


@pytest.fixture(scope="module")
def current_set(tmp_path_factory: pytest.TempPathFactory) -> ImageSet:
    """Same generator and settings, another seed: a batch drawn like the reference."""
    return synthetic_set(tmp_path_factory.mktemp("drift") / "current", 80, seed=22)


@pytest.fixture(scope="module")
def table(reference_set: ImageSet) -> Table:
    """Rows as the pipeline builds them: descriptors, embedding and a model's probabilities."""
    coefficients = compute_coefficients(reference_set.pixels, J, L)
    embedding: Embedding = fit_embedding(coefficients)
    # Stand-in for a champion model: a classifier on the reference embedding.
    model = LogisticRegression(max_iter=1000).fit(
        embedding.transform(coefficients), reference_set.labels
    )

    def build(images: ImageSet, pixels: np.ndarray) -> pd.DataFrame:
        manifest = images.manifest
        embedded = embedding.transform(compute_coefficients(pixels, J, L))
        probabilities = prediction_columns({"scatnet": model.predict_proba(embedded)[:, 1]})
        descriptors = image_descriptors(pixels, manifest["width"], manifest["height"])
        return pd.concat([descriptors, embedded, probabilities], axis=1)

    return build


@pytest.fixture(scope="module")
def reference(reference_set: ImageSet, table: Table) -> pd.DataFrame:
    return table(reference_set, reference_set.pixels)


@pytest.fixture(scope="module")
def darkened(current_set: ImageSet, table: Table) -> pd.DataFrame:
    pixels = (current_set.pixels * DARKENING).round().astype(np.uint8)
    return table(current_set, pixels)


@pytest.fixture(scope="module")
def same_result(reference: pd.DataFrame, current_set: ImageSet, table: Table) -> DriftResult:
    return detect_drift(reference, table(current_set, current_set.pixels))


@pytest.fixture(scope="module")
def dark_result(reference: pd.DataFrame, darkened: pd.DataFrame) -> DriftResult:
    return detect_drift(reference, darkened)


def test_a_batch_drawn_like_the_reference_shows_no_drift(same_result: DriftResult) -> None:
    assert not same_result.drifted
    assert same_result.drift_share < 0.2
    assert len(same_result.column_scores) == 11 + 2 + 8 + 1  # descriptors, sizes, emb, model
    assert "brightness" not in same_result.drifted_columns


def test_a_darkened_batch_is_flagged(dark_result: DriftResult) -> None:
    assert dark_result.drifted
    assert dark_result.drift_share >= 0.5
    assert {"brightness", "contrast", "sharpness", "emb_0"} <= set(dark_result.drifted_columns)
    # Darkening keeps hue and file sizes: those columns must not be blamed.
    assert not {"saturation", "width", "height"} & set(dark_result.drifted_columns)


def test_column_scores_agree_with_evidently_dataset_count(dark_result: DriftResult) -> None:
    """The per-column tests and Evidently's dataset-level count are separate computations."""
    scores = dark_result.column_scores
    assert list(scores.columns) == SCORE_COLUMNS
    assert scores.loc[scores["drifted"], "column"].tolist() == dark_result.drifted_columns
    assert dark_result.drift_share == pytest.approx(scores["drifted"].mean())
    brightness = scores.set_index("column").loc["brightness"]
    assert brightness["method"] == "ks"
    assert brightness["threshold"] == 0.05
    assert brightness["score"] < 1e-6  # a K-S p-value


def test_report_html_and_summary(dark_result: DriftResult) -> None:
    assert "<html" in dark_result.html
    assert len(dark_result.html) > 100_000
    assert "brightness" in dark_result.html
    summary = json.loads(json.dumps(dark_result.summary))
    assert summary["drifted"] is True
    assert summary["drifted_columns"] == dark_result.drifted_columns
    assert summary["drift_share"] == dark_result.drift_share
    assert summary["column_count"] == len(summary["columns"]) == 22
    assert summary["evidently_version"].startswith("0.7")
    assert summary["current_rows"] == 80 and summary["reference_rows"] == 180


def test_thresholds_reach_evidently(reference: pd.DataFrame, darkened: pd.DataFrame) -> None:
    colours = reference[COLOUR_COLUMNS]  # 11 columns are enough, and quicker to report
    lenient = detect_drift(colours, darkened, drift_share_threshold=1.0)
    assert lenient.drift_share == pytest.approx(10 / 11)  # saturation holds
    assert not lenient.drifted
    strict_tests = detect_drift(colours, darkened, stattest_threshold=1e-300)
    assert not strict_tests.drifted_columns
    assert (strict_tests.column_scores["threshold"] == 1e-300).all()


def test_a_large_reference_does_not_flag_a_small_batch_of_the_same_data() -> None:
    """Above 1000 reference rows Evidently's own choice (normed Wasserstein, fixed 0.1) ignores
    the batch size and flags a small same-distribution batch; the K-S default does not."""
    rng = np.random.default_rng(3)
    columns = [f"c{index}" for index in range(10)]
    reference = pd.DataFrame(rng.gamma(2.0, size=(1500, 10)), columns=columns)
    current = pd.DataFrame(rng.gamma(2.0, size=(60, 10)), columns=columns)
    assert not detect_drift(reference, current).drifted
    automatic = detect_drift(reference, current, method=None)
    assert set(automatic.column_scores["method"]) == {"Wasserstein distance (normed)"}
    assert automatic.drifted


def test_only_shared_numeric_columns_are_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    reference = pd.DataFrame({"a": np.arange(30.0), "b": 1.0, "name": "x", "only_ref": 2.0})
    current = pd.DataFrame({"a": np.arange(30.0), "b": 1.0, "name": "y", "only_cur": 3.0})
    assert detect_drift(reference, current).column_scores["column"].tolist() == ["a", "b"]
    assert "DO_NOT_TRACK" not in os.environ  # a library call leaves the environment alone


def test_evidently_is_only_imported_to_compare() -> None:
    """Runs that find no new batch should not pay Evidently's import time."""
    code = "import sys, glasses.drift; sys.exit('evidently' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        (pd.DataFrame(), pd.DataFrame({"a": [1.0]}), "reference frame is empty"),
        (pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": []}), "current frame is empty"),
        (pd.DataFrame({"a": [1.0]}), pd.DataFrame({"b": [1.0]}), "share no numeric column"),
        (pd.DataFrame({"a": ["x"]}), pd.DataFrame({"a": ["y"]}), "share no numeric column"),
    ],
)
def test_unusable_frames_are_refused(
    reference: pd.DataFrame, current: pd.DataFrame, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        detect_drift(reference, current)
