"""The XAI tasks' library calls, without a flow: what they hand on to the summary."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glasses.config import resolve_config
from glasses.models.cnn import CNN
from glasses.xai.explain import Explanation, explain
from tasks.xai import Explained, check_randomisation, score_explanations

TINY = resolve_config("tiny")
SIZE = 32


@pytest.fixture
def tiny_cnn() -> CNN:
    torch.manual_seed(0)
    return CNN(TINY.cnn, SIZE).eval()


def test_check_randomisation_scores_the_edge_control_on_every_step(image_arrays, tiny_cnn):
    pixels, labels = image_arrays(per_class=2, size=SIZE)
    rows = np.array([0, 1, 3])
    images = torch.from_numpy(pixels[rows] / 255).float()
    original = explain(tiny_cnn, images, torch.from_numpy(labels[rows]), "ig", TINY.xai, TINY.seed)
    table = check_randomisation.fn("cnn", tiny_cnn, "ig", pixels, rows, labels, original.maps, TINY)
    assert len(table) == 1 + 6  # the intact model, then each of the CNN's six layers
    assert set(table["model"]) == {"cnn"} and set(table["method"]) == {"ig"}
    assert (table["n"] == 3).all()
    assert table["edge_mean"].between(-1, 1).all()


def test_score_explanations_reports_chance_beside_relevance_mass(image_arrays, tiny_cnn):
    """Row 2 has a mask, row 0 none: localisation covers row 2 alone, deletion both."""
    pixels, labels = image_arrays(per_class=2, size=SIZE)
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[13:19, 3:29] = True  # the bar of the glasses images
    flat, bar = np.ones((SIZE, SIZE)), mask.astype(float)
    explained = Explained(
        "cnn", np.array([0, 2]), Explanation("lime", np.stack([bar, flat]), None, None, 0.0)
    )
    evidence = score_explanations.fn(explained, tiny_cnn, pixels, labels, {2: mask}, None, TINY)
    assert list(evidence.rows) == [2]
    assert evidence.mask_share == [pytest.approx(mask.mean())]
    assert evidence.relevance_mass == [pytest.approx(mask.mean())]  # flat map: chance
    assert evidence.pointing == [True]  # flat map: its maximum is everywhere, the mask included
    assert len(evidence.deletion_areas) == 2
