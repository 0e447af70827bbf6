"""Localisation, deletion and randomisation checks on cases whose right answer is known."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import torch
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
    edge_map,
    localisation_table,
    mask_area_share,
    pointing_game,
    randomisation_layers,
    randomisation_verdict,
    relevance_mass_accuracy,
)
from glasses.xai.randomisation_figure import cascade_figure

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
    """The chance level reported beside relevance mass is what a uniform map scores."""
    mask = square_mask()
    assert mask_area_share(mask) == 64 / SIZE**2
    uniform = np.full((SIZE, SIZE), 0.3)
    assert relevance_mass_accuracy(uniform, mask) == pytest.approx(mask_area_share(mask), rel=1e-12)


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


def test_a_flat_map_hits_any_mask() -> None:
    """All of a flat map is its maximum, so part of it is in the mask: no pixel order decides."""
    assert pointing_game(np.full((SIZE, SIZE), 0.2), square_mask(top=20, left=20))
    assert pointing_game(np.zeros((SIZE, SIZE)), square_mask(top=20, left=20))


def test_a_plateau_maximum_partly_inside_the_mask_hits() -> None:
    """The plateau starts (row-major) outside the mask: first-argmax would call this a miss.
    Values within the relative tie tolerance of the maximum belong to the plateau."""
    mask = square_mask()  # rows and columns 8-15
    plateau = np.zeros((SIZE, SIZE))
    plateau[4:10, 4:10] = 2.0
    plateau[8:10, 8:10] = 2.0 * (1 - 1e-7)  # the plateau's part in the mask, a hair lower
    assert np.unravel_index(np.argmax(plateau), plateau.shape) == (4, 4)
    assert pointing_game(plateau, mask)
    assert not pointing_game(plateau, mask, tie_tolerance=0)


def test_a_unique_maximum_outside_misses_however_close_the_runner_up() -> None:
    mask = square_mask()
    map_ = np.zeros((SIZE, SIZE))
    map_[12, 12] = 0.999  # inside, below the maximum by far more than the tie tolerance
    map_[25, 25] = 1.0
    assert not pointing_game(map_, mask)
    negative = np.full((SIZE, SIZE), -5.0)  # the tolerance is relative to |max|, whatever its sign
    negative[25, 25], negative[12, 12] = -1.0, -1.001
    assert not pointing_game(negative, mask)
    negative[12, 12] = -1.0000001
    assert pointing_game(negative, mask)


def test_localisation_table_reports_chance_and_the_ratio_per_image() -> None:
    mask, small = square_mask(), square_mask(side=4)
    uniform, inside = np.ones((SIZE, SIZE)), mask.astype(float)
    mass = [relevance_mass_accuracy(uniform, mask), relevance_mass_accuracy(inside, small)]
    evidence = Evidence(
        "cnn", "lime", rows=[7, 9], relevance_mass=mass,
        mask_share=[mask_area_share(mask), mask_area_share(small)],
        pointing=[True, True], deletion_areas=[0.1, 0.2], randomisation=randomisation_table(0.1),
    )  # fmt: skip
    table = localisation_table([evidence]).set_index("row")
    assert table.loc[7, "relevance_mass_to_chance"] == pytest.approx(1.0)  # uniform: chance
    assert table.loc[9, "relevance_mass_accuracy"] == pytest.approx(16 / 64)
    assert table.loc[9, "relevance_mass_to_chance"] == pytest.approx((16 / 64) / (16 / SIZE**2))


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
    """The control as a "method": a map that never looks at the model."""
    return edge_map(images)


def fixed_pattern(model: nn.Module, images: torch.Tensor, targets: torch.Tensor):
    """A map that looks neither at the model nor at the image."""
    pattern = np.random.default_rng(0).random((SIZE, SIZE))
    return np.repeat(pattern[None], len(images), axis=0)


def test_edge_map_is_the_sobel_magnitude_of_each_image_alone() -> None:
    image = torch.zeros(2, 3, SIZE, SIZE)
    image[0, :, :, 16:] = 1.0  # a vertical step edge between columns 15 and 16
    edges = edge_map(image)
    assert edges.shape == (2, SIZE, SIZE)
    assert (edges[0][:, [15, 16]] > 0).all()
    assert edges[0][:, :14].max() == 0 and edges[0][:, 18:].max() == 0
    assert edges[1].max() == 0  # a black image next to it has no edges: images do not mix
    np.testing.assert_array_equal(edge_map(image[:1])[0], edges[0])


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
    assert table[["edge_mean", "edge_ci_low", "edge_ci_high"]].abs().le(1).all().all()
    # Gradient × input keeps the input as a factor, so its maps stay partly correlated (about
    # 0.5 here, as Adebayo et al. found); the fall is what the check must see.
    assert table["mean"].iloc[-1] < 0.75
    assert randomisation_verdict(table, threshold=0.75)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_randomisation_fails_a_map_computed_from_the_input_alone(tiny_cnn_and_images) -> None:
    model, images, targets = tiny_cnn_and_images
    table = cascading_randomisation(model, sobel_edges, images, targets, seed=0)
    assert table["mean"].to_numpy() == pytest.approx(1.0)
    assert table["edge_mean"].to_numpy() == pytest.approx(1.0)  # the control scores itself 1
    assert not randomisation_verdict(table)


def test_the_callers_original_maps_save_a_step_and_change_nothing(tiny_cnn_and_images) -> None:
    model, images, targets = tiny_cnn_and_images
    calls = []

    def counted(*args):
        calls.append(1)
        return gradient_times_input(*args)

    computed = cascading_randomisation(model, counted, images, targets, seed=0)
    steps = len(calls)
    given = gradient_times_input(model.eval(), images, targets)
    reused = cascading_randomisation(model, counted, images, targets, seed=0, original=given)
    assert len(calls) == 2 * steps - 1
    pd.testing.assert_frame_equal(reused, computed)


def test_the_edge_control_tells_input_structure_from_a_model_independent_map(
    tiny_cnn_and_images,
) -> None:
    """A fixed pattern also "fails" (it never changes), but it is not the image's edges:
    the control is what separates the two kinds of failure."""
    model, images, targets = tiny_cnn_and_images
    table = cascading_randomisation(model, fixed_pattern, images, targets, seed=0)
    assert table["mean"].to_numpy() == pytest.approx(1.0)
    assert table["edge_mean"].abs().max() < 0.2


def test_the_scatnet_randomises_only_its_head(tiny_cnn_and_images) -> None:
    """Its scattering filters are fixed wavelets: the head is all there is to randomise."""
    _, images, targets = tiny_cnn_and_images
    model = ScatNet(resolve_config("tiny").scatnet, SIZE)
    layers = [name for name, _ in randomisation_layers(model)]
    assert layers == ["head.layers.5", "head.layers.2", "head.layers.0"]
    table = cascading_randomisation(model, gradient_times_input, images, targets, seed=0)
    assert len(table) == 4
    assert table["mean"].iloc[-1] < 0.75


def randomisation_table(final: float, edges: tuple[float, float] = (0.3, 0.2)) -> pd.DataFrame:
    return pd.DataFrame(
        {"step": [0, 1], "layer": ["none", "fc"], "mean": [1.0, final],
         "ci_low": [1.0, final - 0.1], "ci_high": [1.0, final + 0.1], "n": [3, 3],
         "edge_mean": list(edges),
         "edge_ci_low": list(edges), "edge_ci_high": list(edges)}
    )  # fmt: skip


def test_correctness_table_summarises_per_model_and_method() -> None:
    evidence = [
        Evidence("cnn", "ig", [1, 2, 3], [0.9, 0.8, 0.7], [0.1, 0.2, 0.1], [True, True, False],
                 [0.2, 0.3, 0.1], randomisation_table(0.1)),
        Evidence("cnn", "edges", [1, 2, 3], [0.2, float("nan"), 0.4], [0.1, 0.2, 0.1],
                 [False] * 3, [0.6, 0.5, 0.7], randomisation_table(0.95, edges=(1.0, 1.0))),
    ]  # fmt: skip
    table = correctness_table(evidence).set_index(["model", "method"])
    ig, edges = table.loc[("cnn", "ig")], table.loc[("cnn", "edges")]
    assert ig["relevance_mass_accuracy"] == pytest.approx(0.8)
    assert ig["relevance_mass_ci_low"] <= 0.8 <= ig["relevance_mass_ci_high"]
    assert ig["mask_area_share"] == pytest.approx(0.4 / 3)
    assert ig["relevance_mass_to_chance"] == pytest.approx((9 + 4 + 7) / 3)  # mean of ratios
    assert edges["relevance_mass_to_chance"] == pytest.approx(3.0)  # nan image left out
    assert (ig["edge_correlation"], ig["randomised_edge_correlation"]) == (0.3, 0.2)
    assert (ig["final_rank_ci_low"], ig["final_rank_ci_high"]) == pytest.approx((0.0, 0.2))
    assert edges["edge_correlation"] == edges["randomised_edge_correlation"] == 1.0
    assert ig["pointing_game"] == pytest.approx(2 / 3)
    assert ig["deletion_area"] == pytest.approx(0.2)
    assert ig["randomisation_passed"] and not edges["randomisation_passed"]
    assert edges["final_rank_correlation"] == pytest.approx(0.95)
    assert edges["n_localisation"] == 2 and edges["n_deletion"] == 3
    assert ig["n_randomisation"] == 3


def test_cascade_figure_draws_one_line_per_method_and_model(tiny_cnn_and_images) -> None:
    model, images, targets = tiny_cnn_and_images
    scatnet = ScatNet(resolve_config("tiny").scatnet, SIZE)
    tables = [
        cascading_randomisation(net, explain, images, targets).assign(model=name, method=method)
        for name, net in (("cnn", model), ("scatnet", scatnet))
        for method, explain in (("gradient_x_input", gradient_times_input), ("edges", sobel_edges))
    ]
    figure = cascade_figure(pd.concat(tables, ignore_index=True), threshold=0.5)
    panels = [axis for axis in figure.axes if axis.get_title()]
    assert [axis.get_title() for axis in panels] == ["cnn", "scatnet"]
    for axis, steps in zip(panels, (7, 4), strict=True):
        methods = [line for line in axis.get_lines() if not line.get_label().startswith("_")]
        assert sorted(line.get_label() for line in methods) == ["edges", "gradient_x_input"]
        assert all(len(line.get_xdata()) == steps for line in methods)  # trained + each layer
        assert len(axis.get_xticklabels()) == steps
