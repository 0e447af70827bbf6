"""Inverse power-law learning curves: recovered from their own points, bands from resamples,
and a crossing labelled as inside the tried range or as an extrapolation."""

from __future__ import annotations

import numpy as np
import pytest

from glasses.learning_curve import PowerLaw, fit_curves, fit_power_law

SIZES = np.array([800.0, 300.0, 78.0, 40.0, 20.0])
NAMES = {"cnn": "CNN", "scatnet": "ScatNet"}


def noisy(curve: PowerLaw, seed: int, spread: float = 0.01) -> np.ndarray:
    return curve(SIZES) + np.random.default_rng(seed).normal(0, spread, (300, len(SIZES)))


def test_fit_recovers_a_power_law_from_its_points() -> None:
    truth = PowerLaw(0.93, 1.2, 0.6)
    fit = fit_power_law(SIZES, truth(SIZES))
    assert fit is not None
    assert (fit.asymptote, fit.scale, fit.exponent) == pytest.approx((0.93, 1.2, 0.6), rel=1e-4)


def test_two_sizes_are_too_few_for_three_parameters() -> None:
    assert fit_power_law([100, 20], [0.8, 0.7]) is None
    cnn = PowerLaw(0.9, 1.0, 0.5)
    scores = {"cnn": cnn(SIZES[:2]), "scatnet": cnn(SIZES[:2])}
    assert (
        fit_curves(SIZES[:2], scores, {"cnn": np.zeros((5, 2)), "scatnet": np.zeros((5, 2))})
        is None
    )


def test_curves_that_cross_inside_the_tried_range_say_so() -> None:
    cnn, scatnet = PowerLaw(0.95, 1.5, 0.5), PowerLaw(0.88, 0.6, 0.5)
    fits = fit_curves(
        SIZES,
        {"cnn": cnn(SIZES), "scatnet": scatnet(SIZES)},
        {"cnn": noisy(cnn, 1), "scatnet": noisy(scatnet, 2)},
    )
    assert fits is not None
    assert 20 <= fits.crossing <= 800
    assert fits.crossing_low <= fits.crossing <= fits.crossing_high
    line = fits.describe(NAMES)
    assert "asymptotes CNN 0.950, ScatNet 0.880" in line
    assert f"cross at ≈ {fits.crossing:.0f} images (ScatNet ahead below it), inside" in line
    grid_cnn = cnn(fits.grid)
    assert np.mean((fits.low["cnn"] <= grid_cnn) & (grid_cnn <= fits.high["cnn"])) > 0.9


def test_a_crossing_beyond_the_tried_sizes_is_labelled_an_extrapolation() -> None:
    cnn, scatnet = PowerLaw(0.97, 3.0, 0.4), PowerLaw(0.90, 0.9, 0.4)  # cross near 3000
    fits = fit_curves(
        SIZES,
        {"cnn": cnn(SIZES), "scatnet": scatnet(SIZES)},
        {"cnn": noisy(cnn, 3, 0.002), "scatnet": noisy(scatnet, 4, 0.002)},
    )
    assert fits is not None and fits.crossing > 800
    assert "an extrapolation beyond the tried 20–800" in fits.describe(NAMES)


def test_parallel_curves_do_not_cross() -> None:
    cnn, scatnet = PowerLaw(0.95, 1.0, 0.5), PowerLaw(0.85, 1.0, 0.5)
    fits = fit_curves(
        SIZES,
        {"cnn": cnn(SIZES), "scatnet": scatnet(SIZES)},
        {"cnn": noisy(cnn, 5, 0.001), "scatnet": noisy(scatnet, 6, 0.001)},
    )
    assert fits is not None and fits.crossing is None
    assert "the fitted curves do not cross" in fits.describe(NAMES)
