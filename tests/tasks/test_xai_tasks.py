"""The XAI tasks, given references as a flow gives them: a registered version and the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from glasses.config import resolve_config
from glasses.data.reference import DataRef, image_set
from glasses.models.cnn import CNN
from glasses.xai.explain import Explanation
from glasses.xai.methods import explain
from glasses.xai.selection import ImageSelection
from tasks.model_loading import version_model
from tasks.registry import register_model
from tasks.runs import start_run
from tasks.tracking import client, experiment_id
from tasks.xai import Explained, check_randomisation, explain_rows, score_explanations

TINY = resolve_config("tiny")
SIZE = 32


@pytest.fixture
def registered(mlflow_local, image_arrays, references) -> tuple[CNN, str, DataRef]:
    """An untrained tiny CNN registered as `glasses-cnn` v1, and 4 images as a reference."""
    torch.manual_seed(0)
    model = CNN(TINY.cnn, SIZE).eval()
    pixels, labels = image_arrays(per_class=2, size=SIZE)
    data = references.data(pixels, labels)
    tracking = client()
    run_id = start_run(tracking, experiment_id(tracking), "cnn", None, {})
    version = register_model.fn(references.model(model), data, np.arange(2), run_id)
    version_model.cache_clear()  # another test's store may have had a v1 too
    return model, version, data


def test_explain_rows_explains_the_registered_version_and_reuses_it(registered, monkeypatch):
    model, version, data = registered
    rows = np.array([0, 3])
    explained = explain_rows.fn("cnn", version, "ig", data, rows, TINY)
    images = torch.from_numpy(image_set(data).pixels[rows] / 255).float()
    direct = explain(model, images, torch.tensor([0, 1]), "ig", TINY.xai, TINY.seed)
    np.testing.assert_allclose(explained.explanation.maps, direct.maps, rtol=1e-6, atol=1e-9)

    def untouchable(*args, **kwargs):
        raise AssertionError("explained again")

    monkeypatch.setattr("tasks.xai.explain", untouchable)
    again = explain_rows.fn("cnn", version, "ig", data, rows, TINY)  # the same weights: reused
    np.testing.assert_array_equal(again.explanation.maps, explained.explanation.maps)
    with pytest.raises(AssertionError, match="explained again"):
        explain_rows.fn("cnn", version, "ig", data, np.array([1, 2]), TINY)


def test_check_randomisation_scores_the_edge_control_on_every_step(registered):
    model, version, data = registered
    rows = np.array([0, 1, 3])
    images = torch.from_numpy(image_set(data).pixels[rows] / 255).float()
    labels = torch.tensor([0, 1, 1])
    original = explain(model, images, labels, "ig", TINY.xai, TINY.seed)
    table = check_randomisation.fn("cnn", version, "ig", data, rows, original.maps, TINY)
    assert len(table) == (1 + 6) * 3  # the intact model, then each of the CNN's six layers
    assert table["row"].tolist() == rows.tolist() * 7
    assert table[["edge_spearman", "edge_ssim"]].abs().le(1).all().all()


def _selection(masks: dict[int, np.ndarray]) -> ImageSelection:
    rows = [0, 1, 2, 3]
    return ImageSelection(
        named=[2, 0, 3], sample=np.array(rows), masks=masks, settings=TINY.xai,
        people={r: r // 2 for r in rows}, labels={r: r % 2 for r in rows}, training_mean=None,
    )  # fmt: skip


def test_score_explanations_reports_each_check_beside_its_reference(registered):
    """Row 2 has a mask, row 0 none: localisation covers row 2 alone, deletion both; every
    table carries the image's person and class."""
    _, version, data = registered
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[13:19, 3:29] = True  # the bar of the glasses images
    flat, bar = np.ones((SIZE, SIZE)), mask.astype(float)
    explained = Explained(
        "cnn", np.array([0, 2]), Explanation("lime", np.stack([bar, flat]), None, None, 0.0)
    )
    randomisation = pd.DataFrame(
        {"step": [0, 0], "layer": "none", "image": [0, 1], "spearman": 1.0, "ssim": 1.0,
         "edge_spearman": 0.2, "edge_ssim": 0.3, "row": [0, 2]}
    )  # fmt: skip
    evidence = score_explanations.fn(
        explained, version, data, _selection({2: mask}), randomisation, TINY
    )
    localisation = evidence.localisation
    assert localisation["row"].tolist() == [2] and localisation["person"].tolist() == [1]
    assert localisation["mask_share"].iloc[0] == pytest.approx(mask.mean())
    assert localisation["relevance_mass"].iloc[0] == pytest.approx(mask.mean())  # flat: chance
    assert localisation["pointing_chance"].iloc[0] == pytest.approx(mask.mean())
    assert evidence.deletion["row"].tolist() == [0, 2]
    assert evidence.deletion[["area", "random_area"]].notna().all().all()
    assert evidence.randomisation["person"].tolist() == [0, 1]
    assert evidence.randomisation["label"].tolist() == [0, 0]
