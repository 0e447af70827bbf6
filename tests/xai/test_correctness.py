"""Localisation, deletion and randomisation checks on cases whose right answer is known."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from glasses.config import resolve_config
from glasses.models.cnn import CNN
from glasses.models.scatnet import ScatNet
from glasses.xai import correctness
from glasses.xai.methods import explain
from glasses.xai.randomisation_figure import cascade_figure

SIZE = 32


def square_mask(top: int = 8, left: int = 8, side: int = 8, size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_relevance_mass_of_a_map_inside_the_mask_is_one() -> None:
    mask = square_mask()
    inside = np.where(mask, 1.0, -0.5)  # negative evidence outside does not count
    assert correctness.relevance_mass_accuracy(inside, mask) == pytest.approx(1.0)


def test_relevance_mass_of_a_uniform_map_is_the_mask_share() -> None:
    """The chance level reported beside relevance mass is what a uniform map scores."""
    mask = square_mask()
    assert correctness.mask_area_share(mask) == 64 / SIZE**2
    uniform = np.full((SIZE, SIZE), 0.3)
    assert correctness.relevance_mass_accuracy(uniform, mask) == pytest.approx(
        correctness.mask_area_share(mask), rel=1e-12
    )


def test_relevance_mass_without_positive_attribution_is_undefined() -> None:
    assert np.isnan(correctness.relevance_mass_accuracy(-np.ones((SIZE, SIZE)), square_mask()))


def test_localisation_refuses_an_empty_mask() -> None:
    empty = np.zeros((SIZE, SIZE), dtype=bool)
    with pytest.raises(ValueError, match="empty"):
        correctness.relevance_mass_accuracy(np.ones((SIZE, SIZE)), empty)
    with pytest.raises(ValueError, match="empty"):
        correctness.pointing_game(np.ones((SIZE, SIZE)), empty)


def test_pointing_game_hits_and_misses() -> None:
    mask = square_mask()  # rows and columns 8-15
    hit, miss = np.zeros((SIZE, SIZE)), np.zeros((SIZE, SIZE))
    hit[10, 12] = 1.0
    miss[10, 18] = 1.0  # three pixels right of the mask
    assert correctness.pointing_game(hit, mask)
    assert not correctness.pointing_game(miss, mask)
    assert not correctness.pointing_game(miss, mask, tolerance=2)
    assert correctness.pointing_game(miss, mask, tolerance=3)


def test_a_flat_map_hits_at_chance() -> None:
    """All of a flat map is its maximum; one tied pixel is drawn, so it hits at the mask's
    share of the image (its chance level), not every time."""
    mask = square_mask(top=20, left=20)
    hits = [
        correctness.pointing_game(np.full((SIZE, SIZE), 0.2), mask, seed=s) for s in range(2000)
    ]
    assert correctness.pointing_chance(mask) == correctness.mask_area_share(mask) == 64 / SIZE**2
    assert np.mean(hits) == pytest.approx(correctness.pointing_chance(mask), abs=0.02)
    assert correctness.pointing_game(
        np.zeros((SIZE, SIZE)), mask, seed=3
    ) == correctness.pointing_game(np.zeros((SIZE, SIZE)), mask, seed=3)  # seeded


def test_a_plateau_maximum_partly_inside_the_mask_hits_by_its_share_inside() -> None:
    """Values within the relative tie tolerance of the maximum belong to the plateau, and the
    pixel drawn from it decides: a quarter of this plateau lies in the mask."""
    mask = square_mask()  # rows and columns 8-15
    plateau = np.zeros((SIZE, SIZE))
    plateau[6:10, 6:10] = 2.0
    plateau[8:10, 8:10] = 2.0 * (1 - 1e-7)  # the plateau's part in the mask, a hair lower
    hits = [correctness.pointing_game(plateau, mask, seed=s) for s in range(2000)]
    assert np.mean(hits) == pytest.approx(4 / 16, abs=0.03)
    assert not any(
        correctness.pointing_game(plateau, mask, seed=s, tie_tolerance=0) for s in range(50)
    )
    assert correctness.pointing_chance(mask, tolerance=1) == pytest.approx((10 * 10 - 4) / SIZE**2)


def test_a_unique_maximum_outside_misses_however_close_the_runner_up() -> None:
    mask = square_mask()
    map_ = np.zeros((SIZE, SIZE))
    map_[12, 12] = 0.999  # inside, below the maximum by far more than the tie tolerance
    map_[25, 25] = 1.0
    assert not correctness.pointing_game(map_, mask)
    negative = np.full((SIZE, SIZE), -5.0)  # the tolerance is relative to |max|, whatever its sign
    negative[25, 25], negative[12, 12] = -1.0, -1.001
    assert not correctness.pointing_game(negative, mask)
    negative[12, 12] = -1.0000001  # now tied with the maximum outside: the draw decides
    assert {correctness.pointing_game(negative, mask, seed=s) for s in range(20)} == {True, False}


def test_localisation_evidence_scores_the_images_with_a_mask_beside_chance() -> None:
    mask, small = square_mask(), square_mask(side=4)
    uniform, inside = np.ones((SIZE, SIZE)), mask.astype(float)
    table = correctness.localisation_evidence(
        [7, 8, 9], np.stack([uniform, uniform, inside]), {7: mask, 9: small},
        people={7: 0, 8: 0, 9: 1}, labels={7: 1, 8: 0, 9: 1},
    ).set_index("row")  # fmt: skip
    assert table.index.tolist() == [7, 9]  # row 8 has no mask
    assert table.loc[7, "relevance_mass"] == pytest.approx(table.loc[7, "mask_share"])
    assert table.loc[9, "relevance_mass"] == pytest.approx(16 / 64)
    assert table.loc[9, "mask_share"] == table.loc[9, "pointing_chance"] == 16 / SIZE**2
    assert table.loc[9, "pointing"] == 1.0  # the map's plateau is the mask, inside the small one
    assert table["person"].tolist() == [0, 1]


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
    black = torch.zeros_like(image)
    fractions, probabilities = correctness.deletion_curve(model, image, 1, right, black, steps=20)
    assert fractions.shape == probabilities.shape == (21,)
    assert fractions[0] == 0 and fractions[-1] == 1
    unperturbed = model(image[None]).softmax(dim=1)[0, 1].item()
    assert probabilities[0] == pytest.approx(unperturbed)
    assert probabilities[-1] == pytest.approx(0.5)  # all black: both logits 0
    wrong_area = correctness.deletion_area(
        *correctness.deletion_curve(model, image, 1, wrong, black, steps=20, batch_size=4)
    )
    assert correctness.deletion_area(fractions, probabilities) < wrong_area - 0.1
    grey = torch.full_like(image, 0.25)  # the fill is what a deleted pixel becomes
    _, to_grey = correctness.deletion_curve(model, image, 1, right, grey, steps=20)
    assert to_grey[-1] == pytest.approx(model(grey[None]).softmax(dim=1)[0, 1].item())


def test_the_deletion_fill_is_the_blurred_image_or_the_training_mean() -> None:
    image = torch.zeros(3, SIZE, SIZE)
    image[:, :, 16:] = 1.0
    blurred = correctness.deletion_fill(image, "blur")
    assert blurred.shape == image.shape
    assert blurred.mean().item() == pytest.approx(0.5, abs=1e-6)  # blur keeps the brightness
    assert 0.1 < blurred[0, 5, 15].item() < 0.9  # and removes the edge
    mean = torch.full((3, SIZE, SIZE), 0.3)
    assert torch.equal(correctness.deletion_fill(image, "mean", mean), mean)
    with pytest.raises(ValueError, match="mean training image"):
        correctness.deletion_fill(image, "mean")


def test_a_flat_map_deletes_in_random_order_and_the_random_reference_is_shared() -> None:
    """Ties are broken at random, so a flat map meets the random reference on average; the
    reference is seeded per image, equal for every method."""
    model = PatchModel()
    images = torch.full((6, 3, SIZE, SIZE), 0.8)
    maps = np.stack([square_mask().astype(float)] * 3 + [np.ones((SIZE, SIZE))] * 3)
    fills = torch.zeros_like(images)
    table = correctness.deletion_evidence(
        model, images, torch.ones(6, dtype=torch.long), maps, fills, rows=range(6),
        people=dict.fromkeys(range(6), 0), labels=dict.fromkeys(range(6), 1), steps=16,
    )  # fmt: skip
    right, flat = table.iloc[:3], table.iloc[3:]
    assert (right["area"] < right["random_area"] - 0.05).all()
    assert flat["area"].mean() == pytest.approx(flat["random_area"].mean(), abs=0.05)
    again = correctness.deletion_evidence(
        model, images[:1], torch.ones(1, dtype=torch.long), maps[3:4], fills[:1], rows=[3],
        people={3: 0}, labels={3: 1}, steps=16,
    )  # fmt: skip
    assert again["random_area"].iloc[0] == table["random_area"].iloc[3]


def test_deletion_evidence_scores_all_curves_together_as_each_alone(tiny_cnn_and_images):
    """Batches that cross curves and images change nothing but the model's rounding."""
    model, images, targets = tiny_cnn_and_images
    maps = np.random.default_rng(0).random((len(images), SIZE, SIZE))
    fills = torch.stack([correctness.deletion_fill(image, "blur") for image in images])
    rows = range(10, 10 + len(images))
    people, labels = dict.fromkeys(rows, 0), dict.fromkeys(rows, 1)
    table = correctness.deletion_evidence(
        model, images, targets, maps, fills, rows, people, labels, steps=6, seed=4, batch_size=5
    )
    for image, target, map_, fill, row, area, random_area in zip(
        images, targets, maps, fills, rows, table["area"], table["random_area"], strict=True
    ):
        alone = [
            correctness.deletion_area(*correctness.deletion_curve(
                model, image, int(target), order, fill, 6, seed=(4, row)))
            for order in (map_, correctness.random_map(map_.shape, (4, row, 1)))
        ]  # fmt: skip
        assert [area, random_area] == pytest.approx(alone, rel=1e-6)
    assert table["row"].tolist() == list(rows)


def test_deletion_curve_restores_training_mode() -> None:
    model = PatchModel().train()
    image = torch.rand(3, SIZE, SIZE)
    correctness.deletion_curve(
        model, image, 1, np.random.rand(SIZE, SIZE), torch.zeros_like(image), steps=4
    )
    assert model.training


def gradient_times_input(model: nn.Module, images: torch.Tensor, targets: torch.Tensor):
    """Channel-summed gradient × input: a simple method that does depend on the weights."""
    images = images.clone().requires_grad_(True)
    scores = model(images).gather(1, targets[:, None]).sum()
    (gradient,) = torch.autograd.grad(scores, images)
    return (gradient * images).sum(dim=1).detach().numpy()


def sobel_edges(model: nn.Module, images: torch.Tensor, targets: torch.Tensor):
    """The control as a "method": a map that never looks at the model."""
    return correctness.edge_map(images)


def fixed_pattern(model: nn.Module, images: torch.Tensor, targets: torch.Tensor):
    """A map that looks neither at the model nor at the image."""
    pattern = np.random.default_rng(0).random((SIZE, SIZE))
    return np.repeat(pattern[None], len(images), axis=0)


def test_edge_map_is_the_sobel_magnitude_of_each_image_alone() -> None:
    image = torch.zeros(2, 3, SIZE, SIZE)
    image[0, :, :, 16:] = 1.0  # a vertical step edge between columns 15 and 16
    edges = correctness.edge_map(image)
    assert edges.shape == (2, SIZE, SIZE)
    assert (edges[0][:, [15, 16]] > 0).all()
    assert edges[0][:, :14].max() == 0 and edges[0][:, 18:].max() == 0
    assert edges[1].max() == 0  # a black image next to it has no edges: images do not mix
    np.testing.assert_array_equal(correctness.edge_map(image[:1])[0], edges[0])


@pytest.fixture
def tiny_cnn_and_images(
    image_arrays: Callable[..., tuple[np.ndarray, np.ndarray]],
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = CNN(resolve_config("tiny").cnn, SIZE)
    pixels, labels = image_arrays(per_class=3, size=SIZE)
    return model, torch.as_tensor(pixels / 255, dtype=torch.float32), torch.as_tensor(labels)


def _steps(table: pd.DataFrame, column: str) -> np.ndarray:
    """Mean of `column` per step."""
    return table.groupby("step")[column].mean().to_numpy()


def test_randomisation_changes_gradient_maps(tiny_cnn_and_images) -> None:
    model, images, targets = tiny_cnn_and_images
    before = model.state_dict()
    table = correctness.cascading_randomisation(
        model, gradient_times_input, images, targets, seed=0
    )
    layers = [name for name, _ in correctness.randomisation_layers(model)]
    assert list(dict.fromkeys(table["layer"])) == ["none", *layers]
    assert layers[0] == "head.layers.5" and layers[-1] == "features.1"
    assert len(table) == (len(layers) + 1) * len(images)
    assert table["image"].tolist() == list(range(len(images))) * (len(layers) + 1)
    intact = table[table["step"] == 0]
    assert intact[["spearman", "ssim"]].to_numpy() == pytest.approx(1.0)
    assert table[["edge_spearman", "edge_ssim"]].abs().le(1).all().all()
    # Gradient × input keeps the input as a factor, so its maps stay partly correlated (about
    # 0.5 here, as Adebayo et al. found); the fall is what the check must see.
    assert _steps(table, "spearman")[-1] < 0.75
    assert _steps(table, "ssim")[-1] < _steps(table, "ssim")[0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_randomisation_fails_a_map_computed_from_the_input_alone(tiny_cnn_and_images) -> None:
    """The edges never change and are their own control: the difference is exactly 0."""
    model, images, targets = tiny_cnn_and_images
    table = correctness.cascading_randomisation(model, sobel_edges, images, targets, seed=0)
    for column in ("spearman", "ssim", "edge_spearman", "edge_ssim"):
        assert table[column].to_numpy() == pytest.approx(1.0)
    evidence = _evidence("edges", randomisation=_with_people(table))
    checks = correctness.checks_table([evidence]).set_index("check")
    for name in ("randomisation (Spearman)", "randomisation (SSIM)"):
        assert checks.loc[name, "difference"] == pytest.approx(0.0, abs=1e-9)
        assert checks.loc[name, "verdict"] == "undecided"


def test_the_callers_original_maps_save_a_step_and_change_nothing(tiny_cnn_and_images) -> None:
    model, images, targets = tiny_cnn_and_images
    calls = []

    def counted(*args):
        calls.append(1)
        return gradient_times_input(*args)

    computed = correctness.cascading_randomisation(model, counted, images, targets, seed=0)
    steps = len(calls)
    given = gradient_times_input(model.eval(), images, targets)
    reused = correctness.cascading_randomisation(
        model, counted, images, targets, seed=0, original=given
    )
    assert len(calls) == 2 * steps - 1
    pd.testing.assert_frame_equal(reused, computed)


def test_the_edge_control_tells_input_structure_from_a_model_independent_map(
    tiny_cnn_and_images,
) -> None:
    """A fixed pattern also survives randomisation (it never changes), but it is not the
    image's edges: the control is what separates the two kinds of failure."""
    model, images, targets = tiny_cnn_and_images
    table = correctness.cascading_randomisation(model, fixed_pattern, images, targets, seed=0)
    assert table["spearman"].to_numpy() == pytest.approx(1.0)
    assert table["edge_spearman"].abs().max() < 0.2
    checks = correctness.checks_table([_evidence("pattern", randomisation=_with_people(table))])
    spearman = checks.set_index("check").loc["randomisation (Spearman)"]
    assert spearman["verdict"] == "worse"  # closer to the trained maps than the edges are


def test_the_scatnet_randomises_only_its_head(tiny_cnn_and_images) -> None:
    """Its scattering filters are fixed wavelets: the head is all there is to randomise."""
    _, images, targets = tiny_cnn_and_images
    model = ScatNet(resolve_config("tiny").scatnet, SIZE)
    layers = [name for name, _ in correctness.randomisation_layers(model)]
    assert layers == ["head.layers.5", "head.layers.2", "head.layers.0"]
    table = correctness.cascading_randomisation(
        model, gradient_times_input, images, targets, seed=0
    )
    assert table["step"].max() == 3 and len(table) == 4 * len(images)
    assert _steps(table, "spearman")[-1] < 0.75


@pytest.mark.parametrize("method", ["lime", "shap"])
def test_scattering_once_leaves_the_cascade_unchanged(tiny_cnn_and_images, monkeypatch, method):
    """The ScatNet's perturbed images are scattered once (LIME's all repeat at every step,
    SHAP's in part) and every map and similarity stays the same, bit for bit."""
    _, images, targets = tiny_cnn_and_images
    torch.manual_seed(0)
    model = ScatNet(resolve_config("tiny").scatnet, SIZE)
    settings = resolve_config("tiny").xai

    def maps(candidate: nn.Module, pixels: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        return explain(candidate, pixels, labels, method, settings, 0).maps

    memos = []
    reusing = ScatNet.reusing_scattering

    def recorded(self, budget):
        with reusing(self, budget) as memo:
            memos.append(memo)
            yield memo

    monkeypatch.setattr(ScatNet, "reusing_scattering", contextmanager(recorded))
    every_time = correctness.cascading_randomisation(model, maps, images, targets, reuse_mb=0)
    once = correctness.cascading_randomisation(model, maps, images, targets, reuse_mb=64)
    pd.testing.assert_frame_equal(once, every_time, check_exact=True)
    (memo,) = memos
    assert memo.hits > 0


def _with_people(table: pd.DataFrame) -> pd.DataFrame:
    """One person per image, classes alternating."""
    return table.assign(person=table["image"], label=table["image"] % 2)


def _evidence(
    method: str,
    localisation: pd.DataFrame | None = None,
    deletion: pd.DataFrame | None = None,
    randomisation: pd.DataFrame | None = None,
) -> correctness.Evidence:
    empty_localisation = pd.DataFrame(
        columns=["row", "person", "label", "relevance_mass", "mask_share", "pointing",
                 "pointing_chance"]
    )  # fmt: skip
    empty_deletion = pd.DataFrame(columns=["row", "person", "label", "area", "random_area"])
    empty_randomisation = pd.DataFrame(
        columns=["step", "layer", "image", "spearman", "ssim", "edge_spearman", "edge_ssim",
                 "person", "label"]
    )  # fmt: skip
    return correctness.Evidence(
        "cnn",
        method,
        empty_localisation if localisation is None else localisation,
        empty_deletion if deletion is None else deletion,
        empty_randomisation if randomisation is None else randomisation,
    )


def test_the_summary_per_layer_has_intervals_over_people(tiny_cnn_and_images) -> None:
    model, images, targets = tiny_cnn_and_images
    table = correctness.cascading_randomisation(
        model, gradient_times_input, images, targets, seed=0
    )
    summary = correctness.randomisation_summary(
        _with_people(table).assign(model="cnn", method="gxi")
    )
    assert summary["step"].tolist() == list(range(7)) and (summary["n"] == len(images)).all()
    final = summary.iloc[-1]
    assert final["spearman_low"] <= final["spearman"] <= final["spearman_high"]
    assert final["ssim_low"] <= final["ssim"] <= final["ssim_high"]
    assert summary.iloc[0]["spearman_low"] == pytest.approx(1.0)  # the trained model itself


def test_checks_are_differences_from_their_references_over_people() -> None:
    """Mass 0.5 on masks of share 0.1: beats chance by 0.4. A map that hits as often as chance
    cannot decide. Deletion worse than random order is "worse"."""
    rng = np.random.default_rng(0)
    people = np.repeat(np.arange(10), 2)  # two images per person
    localisation = pd.DataFrame(
        {"row": np.arange(20), "person": people, "label": 1,
         "relevance_mass": 0.5 + rng.normal(0, 0.05, 20), "mask_share": 0.1,
         "pointing": [1.0, 0.0] * 10, "pointing_chance": 0.5}
    )  # fmt: skip
    deletion = pd.DataFrame(
        {"row": np.arange(20), "person": people, "label": [0, 1] * 10,
         "area": 0.6 + rng.normal(0, 0.02, 20), "random_area": 0.4}
    )  # fmt: skip
    table = correctness.checks_table([_evidence("m", localisation, deletion)]).set_index("check")
    assert list(table.index) == [check.name for check in correctness.CHECKS]
    mass = table.loc["relevance mass"]
    assert mass["reference"] == pytest.approx(0.1)
    assert mass["difference"] == pytest.approx(localisation["relevance_mass"].mean() - 0.1)
    assert 0 < mass["low"] < mass["difference"] < mass["high"] and mass["verdict"] == "beats"
    assert table.loc["pointing game", "difference"] == pytest.approx(0.0)
    assert table.loc["pointing game", "verdict"] == "undecided"
    assert table.loc["deletion", "difference"] < 0 and table.loc["deletion", "verdict"] == "worse"
    assert table.loc["randomisation (SSIM)", "n"] == 0  # no check run: cannot decide
    assert table.loc["randomisation (SSIM)", "verdict"] == "undecided"


def test_verdicts_need_the_interval_to_exclude_zero() -> None:
    assert correctness.verdict(0.01, 0.3) == "beats"
    assert correctness.verdict(-0.3, -0.01) == "worse"
    assert (
        correctness.verdict(-0.1, 0.2)
        == correctness.verdict(float("nan"), float("nan"))
        == "undecided"
    )


def test_the_ranking_counts_checks_beaten_then_checks_worse() -> None:
    checks = pd.DataFrame(
        [("cnn", "a", "x", "beats"), ("cnn", "a", "y", "worse"),
         ("cnn", "b", "x", "beats"), ("cnn", "b", "y", "undecided"),
         ("cnn", "c", "x", "undecided"), ("cnn", "c", "y", "undecided"),
         ("cnn", "d", "x", "undecided"), ("cnn", "d", "y", "undecided"),
         ("scatnet", "a", "x", "worse"), ("scatnet", "a", "y", "worse")],
        columns=["model", "method", "check", "verdict"],
    )  # fmt: skip
    ranking = correctness.method_ranking(checks).set_index(["model", "method"])["rank"]
    assert ranking.loc["cnn"].to_dict() == {"b": 1, "a": 2, "c": 3, "d": 3}
    assert ranking.loc[("scatnet", "a")] == 1


def test_cascade_figure_draws_one_line_per_method_and_model(tiny_cnn_and_images) -> None:
    model, images, targets = tiny_cnn_and_images
    scatnet = ScatNet(resolve_config("tiny").scatnet, SIZE)
    tables = [
        _with_people(correctness.cascading_randomisation(net, explain, images, targets)).assign(
            model=name, method=method
        )
        for name, net in (("cnn", model), ("scatnet", scatnet))
        for method, explain in (("gradient_x_input", gradient_times_input), ("edges", sobel_edges))
    ]
    figure = cascade_figure(correctness.randomisation_summary(pd.concat(tables, ignore_index=True)))
    panels = [axis for axis in figure.axes if axis.get_title()]
    assert [axis.get_title() for axis in panels] == ["cnn", "scatnet"]
    for axis, steps in zip(panels, (7, 4), strict=True):
        methods = [line for line in axis.get_lines() if not line.get_label().startswith("_")]
        assert sorted(line.get_label() for line in methods) == ["edges", "gradient_x_input"]
        assert all(len(line.get_xdata()) == steps for line in methods)  # trained + each layer
        assert len(axis.get_xticklabels()) == steps
