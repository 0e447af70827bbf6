"""IG from scratch: exact on a linear model, Captum's twin on both tiny models, and not slower."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from captum.attr._utils.approximation_methods import approximation_parameters
from torch import nn

from glasses.config import resolve_config
from glasses.fitting import train_on
from glasses.scattering import compute_coefficients
from glasses.xai.baselines import black_baseline, random_baseline
from glasses.xai.captum_ig import captum_integrated_gradients
from glasses.xai.integrated_gradients import (
    METHODS,
    alphas,
    completeness_gap,
    integrated_gradients,
    target_logits,
)
from glasses.xai.methods import explain

TINY = resolve_config("tiny")
SIZE = 32


def make_baseline(name: str, images: torch.Tensor) -> torch.Tensor:
    return black_baseline(images) if name == "black" else random_baseline(images, seed=3)


def agreement(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Pearson r and relative L2 difference of two attribution tensors."""
    x, y = a.double().flatten(), b.double().flatten()
    pearson = torch.corrcoef(torch.stack([x, y]))[0, 1].item()
    return pearson, ((x - y).norm() / y.norm()).item()


@pytest.mark.parametrize("method", METHODS)
def test_alphas_and_weights_are_captums(method: str) -> None:
    step_sizes, captum_alphas = approximation_parameters(method)
    points, weights = alphas(20, method)
    assert points.tolist() == captum_alphas(20)  # bit for bit: see `alphas`
    np.testing.assert_allclose(weights.numpy(), step_sizes(20), rtol=1e-15)


def test_captums_trapezoid_weights_sum_to_one_minus_one_over_steps() -> None:
    """The quirk the module docstring documents: the source of the trapezoid rule's 1/n bias."""
    for steps in (8, 50):
        assert alphas(steps, "riemann_trapezoid")[1].sum().item() == pytest.approx(1 - 1 / steps)
        assert alphas(steps, "riemann_middle")[1].sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("baseline_name", ["black", "random"])
def test_linear_model_ig_is_displacement_times_weight(method: str, baseline_name: str) -> None:
    """A constant gradient makes every Riemann rule exact, up to the sum of its weights."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)).double().eval()
    inputs = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    targets = torch.tensor([0, 1, 1])
    baseline = make_baseline(baseline_name, inputs)
    weight = model[1].weight.detach()[targets].view_as(inputs)
    expected = (inputs - baseline) * weight * alphas(10, method)[1].sum()
    # batch_size 7 over 3 images: two alphas per pass, five passes.
    result = integrated_gradients(model, inputs, targets, baseline, 10, method, batch_size=7)
    torch.testing.assert_close(result, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", ["cnn", "scatnet"])
@pytest.mark.parametrize("baseline_name", ["black", "random"])
def test_scratch_matches_captum(
    tiny_model, images: torch.Tensor, kind: str, baseline_name: str
) -> None:
    """float32 is enough: the two differ by rounding only (relative L2 about 1e-7)."""
    model = tiny_model(kind)
    targets = torch.tensor([0, 1])
    baseline = make_baseline(baseline_name, images)
    ours = integrated_gradients(model, images, targets, baseline, steps=24, batch_size=16)
    reference = captum_integrated_gradients(
        model, images, targets, baseline, steps=24, batch_size=16
    )
    pearson, relative = agreement(ours, reference)
    assert pearson >= 0.9999
    assert relative <= 1e-4


def trained_tiny_model(kind: str, pixels: np.ndarray, labels: np.ndarray) -> nn.Module:
    inputs = torch.from_numpy(pixels)
    if kind == "scatnet":
        inputs = compute_coefficients(pixels, TINY.scatnet.J, TINY.scatnet.L)
    rows = np.arange(len(pixels))
    return train_on(kind, TINY, inputs, torch.from_numpy(labels), rows, seed=0).model


@pytest.mark.parametrize("kind", ["cnn", "scatnet"])
def test_float32_ig_agrees_with_captum_on_trained_models(
    image_arrays, images: torch.Tensor, kind: str
) -> None:
    """`xai.ig_dtype` float32, through `explain` as the pipeline calls it: trained ScatNets are
    where float32 rounding shows (see `explain`), and the agreement must still be r >= 0.9999."""
    model = trained_tiny_model(kind, *image_arrays(per_class=8, size=SIZE))
    config = TINY.xai.model_copy(update={"ig_dtype": "float32"})
    targets = torch.tensor([0, 1])
    for scratch, captum in (("ig", "ig_captum"), ("ig_random", "ig_captum_random")):
        ours = explain(model, images, targets, scratch, config, seed=0)
        reference = explain(model, images, targets, captum, config, seed=0)
        pearson, _ = agreement(torch.from_numpy(ours.raw), torch.from_numpy(reference.raw))
        assert pearson >= 0.9999, (scratch, pearson)


def test_ig_dtype_is_the_precision_ig_runs_in(tiny_model, images: torch.Tensor) -> None:
    model = tiny_model("scatnet")
    targets = torch.tensor([0, 1])
    raw = {
        dtype: explain(
            model, images, targets, "ig", TINY.xai.model_copy(update={"ig_dtype": dtype}), seed=0
        ).raw
        for dtype in ("float32", "float64")
    }
    assert not np.array_equal(raw["float32"], raw["float64"])
    np.testing.assert_allclose(raw["float32"], raw["float64"], rtol=1e-3, atol=1e-6)
    assert next(model.parameters()).dtype == torch.float32  # float64 works on a copy


def test_batch_size_does_not_change_the_result(tiny_model, images: torch.Tensor) -> None:
    model = tiny_model("cnn")
    baseline = random_baseline(images, seed=1)
    one = integrated_gradients(model, images, 1, baseline, steps=12, batch_size=1)
    many = integrated_gradients(model, images, 1, baseline, steps=12, batch_size=64)
    torch.testing.assert_close(one, many, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["cnn", "scatnet"])
def test_completeness_gap_shrinks_with_steps(tiny_model, image_arrays, kind: str) -> None:
    """Averaged over four images: one image's quadrature error can cancel by chance at 8 steps."""
    pixels, _ = image_arrays(per_class=2, size=SIZE)
    inputs = torch.from_numpy(pixels).double() / 255
    model = tiny_model(kind).double()
    baseline = black_baseline(inputs)
    gaps = [
        completeness_gap(
            model,
            inputs,
            1,
            baseline,
            integrated_gradients(model, inputs, 1, baseline, steps, batch_size=96),
        ).mean()
        for steps in (8, 32, 128)
    ]
    assert gaps[0] > gaps[1] > gaps[2]
    change = target_logits(model, inputs, torch.ones(4, dtype=torch.long)) - target_logits(
        model, baseline, torch.ones(4, dtype=torch.long)
    )
    assert gaps[2] < 0.02 * change.abs().mean()


def test_scratch_is_not_slower_than_captum(tiny_model, images: torch.Tensor) -> None:
    model = tiny_model("cnn")
    baseline = black_baseline(images)

    def best_of(compute) -> float:
        compute(
            model, images, 1, baseline, steps=50, batch_size=64
        )  # warm-up: first calls pay for allocations
        times = []
        for _ in range(5):
            started = time.perf_counter()
            compute(model, images, 1, baseline, steps=50, batch_size=64)
            times.append(time.perf_counter() - started)
        return min(times)

    scratch, captum = best_of(integrated_gradients), best_of(captum_integrated_gradients)
    print(f"IG 50 steps, 2 tiny-CNN images: scratch {scratch:.4f} s, captum {captum:.4f} s")
    assert scratch <= 1.5 * captum
