"""Localisation, deletion and randomisation checks on cases whose right answer is known."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage
from torch import nn

from glasses.config import resolve_config
from glasses.models.cnn import CNN
from glasses.models.scatnet import ScatNet
from glasses.xai.correctness import (
    Evidence,
    cascading_randomisation,
    correctness_table,
    deletion_area,
    deletion_curve,
    pointing_game,
    randomisation_layers,
    randomisation_verdict,
    relevance_mass_accuracy,
)

SIZE = 32


def square_mask(top: int = 8, left: int = 8, side: int = 8, size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_relevance_mass_of_a_map_inside_the_mask_is_one() -> None:
    mask = square_mask()
    inside = np.where(mask, 1.0, -0.5)  # negative evidence outside does not count
    assert relevance_mass_accuracy(inside, mask) == pytest.approx(1.0)


def test_relevance_mass_of_a_uniform_map_is_the_mask_share() -> None:
    mask = square_mask()
    assert relevance_mass_accuracy(np.ones((SIZE, SIZE)), mask) == pytest.approx(mask.mean())


def test_relevance_mass_without_positive_attribution_is_undefined() -> None:
    assert np.isnan(relevance_mass_accuracy(-np.ones((SIZE, SIZE)), square_mask()))


def test_localisation_refuses_an_empty_mask() -> None:
    empty = np.zeros((SIZE, SIZE), dtype=bool)
    with pytest.raises(ValueError, match="empty"):
        relevance_mass_accuracy(np.ones((SIZE, SIZE)), empty)
    with pytest.raises(ValueError, match="empty"):
        pointing_game(np.ones((SIZE, SIZE)), empty)


def test_pointing_game_hits_and_misses() -> None:
    mask = square_mask()  # rows and columns 8-15
    hit, miss = np.zeros((SIZE, SIZE)), np.zeros((SIZE, SIZE))
    hit[10, 12] = 1.0
    miss[10, 18] = 1.0  # three pixels right of the mask
    assert pointing_game(hit, mask)
    assert not pointing_game(miss, mask)
    assert not pointing_game(miss, mask, tolerance=2)
    assert pointing_game(miss, mask, tolerance=3)


class PatchModel(nn.Module):
    """Glasses logit = 8 × the mean brightness of the patch under `square_mask()`."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        score = 8 * images[:, :, 8:16, 8:16].mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(score), score], dim=1)


def test_deleting_the_right_pixels_first_gives_the_smaller_area() -> None:
    model = PatchModel()
    image = torch.full((3, SIZE, SIZE), 0.8)
    right = square_mask().astype(float)
    wrong = square_mask(top=20, left=20).astype(float)
    fractions, probabilities = deletion_curve(model, image, 1, right, steps=20)
    assert fractions.shape == probabilities.shape == (21,)
    assert fractions[0] == 0 and fractions[-1] == 1
    unperturbed = model(image[None]).softmax(dim=1)[0, 1].item()
    assert probabilities[0] == pytest.approx(unperturbed)
    assert probabilities[-1] == pytest.approx(0.5)  # all black: both logits 0
    wrong_area = deletion_area(*deletion_curve(model, image, 1, wrong, steps=20, batch_size=4))
    assert deletion_area(fractions, probabilities) < wrong_area - 0.1


def test_deletion_curve_restores_training_mode() -> None:
    model = PatchModel().train()
    deletion_curve(model, torch.rand(3, SIZE, SIZE), 1, np.random.rand(SIZE, SIZE), steps=4)
    assert model.training


def gradient_times_input(model: nn.Module, images: torch.Tensor, targets: torch.Tensor):
    """Channel-summed gradient × input: a simple method that does depend on the weights."""
    images = images.clone().requires_grad_(True)
    scores = model(images).gather(1, targets[:, None]).sum()
    (gradient,) = torch.autograd.grad(scores, images)
    return (gradient * images).sum(dim=1).detach().numpy()


def sobel_edges(model: nn.Module, images: torch.Tensor, targets: torch.Tensor):
    """Edge magnitude of the grey image: a "map" that never looks at the model."""
    grey = images.mean(dim=1).numpy()
    return np.hypot(ndimage.sobel(grey, axis=1), ndimage.sobel(grey, axis=2))


@pytest.fixture
def tiny_cnn_and_images(
    image_arrays: Callable[..., tuple[np.ndarray, np.ndarray]],
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = CNN(resolve_config("tiny").cnn, SIZE)
    pixels, labels = image_arrays(per_class=3, size=SIZE)
    return model, torch.as_tensor(pixels / 255, dtype=torch.float32), torch.as_tensor(labels)


def test_randomisation_changes_gradient_maps(tiny_cnn_and_images) -> None:
    model, images, targets = tiny_cnn_and_images
    before = model.state_dict()
    table = cascading_randomisation(model, gradient_times_input, images, targets, seed=0)
    layers = [name for name, _ in randomisation_layers(model)]
    assert list(table["layer"]) == ["none", *layers]
    assert layers[0] == "head.layers.5" and layers[-1] == "features.1"
    assert table["step"].tolist() == list(range(len(layers) + 1))
    assert table["mean"].iloc[0] == 1.0
    # Gradient × input keeps the input as a factor, so its maps stay partly correlated (about
    # 0.5 here, as Adebayo et al. found); the fall is what the check must see.
    assert table["mean"].iloc[-1] < 0.75
    assert randomisation_verdict(table, threshold=0.75)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_randomisation_fails_a_map_computed_from_the_input_alone(tiny_cnn_and_images) -> None:
    model, images, targets = tiny_cnn_and_images
    table = cascading_randomisation(model, sobel_edges, images, targets, seed=0)
    assert table["mean"].to_numpy() == pytest.approx(1.0)
    assert not randomisation_verdict(table)


def test_the_scatnet_randomises_only_its_head(tiny_cnn_and_images) -> None:
    """Its scattering filters are fixed wavelets: the head is all there is to randomise."""
    _, images, targets = tiny_cnn_and_images
    model = ScatNet(resolve_config("tiny").scatnet, SIZE)
    layers = [name for name, _ in randomisation_layers(model)]
    assert layers == ["head.layers.5", "head.layers.2", "head.layers.0"]
    table = cascading_randomisation(model, gradient_times_input, images, targets, seed=0)
    assert len(table) == 4
    assert table["mean"].iloc[-1] < 0.75


def randomisation_table(final: float) -> pd.DataFrame:
    return pd.DataFrame(
        {"step": [0, 1], "layer": ["none", "fc"], "mean": [1.0, final], "ci_low": [1.0, final],
         "ci_high": [1.0, final], "n": [3, 3]}
    )  # fmt: skip


def test_correctness_table_summarises_per_model_and_method() -> None:
    evidence = [
        Evidence("cnn", "ig", [0.9, 0.8, 0.7], [True, True, False], [0.2, 0.3, 0.1],
                 randomisation_table(0.1)),
        Evidence("cnn", "edges", [0.2, float("nan"), 0.4], [False] * 3, [0.6, 0.5, 0.7],
                 randomisation_table(0.95)),
    ]  # fmt: skip
    table = correctness_table(evidence).set_index(["model", "method"])
    ig, edges = table.loc[("cnn", "ig")], table.loc[("cnn", "edges")]
    assert ig["relevance_mass_accuracy"] == pytest.approx(0.8)
    assert ig["relevance_mass_ci_low"] <= 0.8 <= ig["relevance_mass_ci_high"]
    assert ig["pointing_game"] == pytest.approx(2 / 3)
    assert ig["deletion_area"] == pytest.approx(0.2)
    assert ig["randomisation_passed"] and not edges["randomisation_passed"]
    assert edges["final_rank_correlation"] == pytest.approx(0.95)
    assert edges["n_localisation"] == 2 and edges["n_deletion"] == 3
