"""The XAI tasks, given references as a flow gives them: a registered version and the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glasses.config import resolve_config
from glasses.data.reference import DataRef, image_set
from glasses.models.cnn import CNN
from glasses.xai.explain import Explanation
from glasses.xai.methods import explain
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
    assert len(table) == 1 + 6  # the intact model, then each of the CNN's six layers
    assert set(table["model"]) == {"cnn"} and set(table["method"]) == {"ig"}
    assert (table["n"] == 3).all()
    assert table["edge_mean"].between(-1, 1).all()


def test_score_explanations_reports_chance_beside_relevance_mass(registered):
    """Row 2 has a mask, row 0 none: localisation covers row 2 alone, deletion both."""
    _, version, data = registered
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[13:19, 3:29] = True  # the bar of the glasses images
    flat, bar = np.ones((SIZE, SIZE)), mask.astype(float)
    explained = Explained(
        "cnn", np.array([0, 2]), Explanation("lime", np.stack([bar, flat]), None, None, 0.0)
    )
    evidence = score_explanations.fn(explained, version, data, {2: mask}, None, TINY)
    assert list(evidence.rows) == [2]
    assert evidence.mask_share == [pytest.approx(mask.mean())]
    assert evidence.relevance_mass == [pytest.approx(mask.mean())]  # flat map: chance
    assert evidence.pointing == [True]  # flat map: its maximum is everywhere, the mask included
    assert len(evidence.deletion_areas) == 2
