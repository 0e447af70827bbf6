"""Learning-curve models: an inverse power law per family, fitted to the sweep's points.

The learning-curve literature (e.g. Cortes et al. 1994; Hestness et al. 2017; Viering & Loog
2022) finds that test error falls roughly as a power of the training-set size, so a score
follows `a − b·n^(−c)`: `a` the score the family approaches with unlimited data, `b` and `c`
how far below it small sets start and how fast they catch up. Fitted curves say where two
families would change order *between* and *beyond* the tried sizes; beyond the range that is an
extrapolation and is always labelled so, never the verdict's first clause. Bands and the
crossing's interval come from refitting the sweep's bootstrap resamples.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

MIN_SIZES = 3  # three parameters need three sizes
SEARCH = (1.0, 1e6)  # sizes in which a crossing of the fitted curves is looked for


@dataclass(frozen=True)
class PowerLaw:
    asymptote: float  # a: the score with unlimited data
    scale: float  # b: how far below it a set of one image starts
    exponent: float  # c: how fast the gap closes

    def __call__(self, sizes: np.ndarray) -> np.ndarray:
        return _curve(np.asarray(sizes, dtype=float), self.asymptote, self.scale, self.exponent)


def _curve(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(n, -c)


def fit_power_law(sizes: Sequence[float], scores: Sequence[float]) -> PowerLaw | None:
    """Least-squares fit with the asymptote in [0, 1], a non-negative scale and a positive
    exponent (scores rise with data); None with fewer than `MIN_SIZES` sizes or no fit."""
    n, y = np.asarray(sizes, dtype=float), np.asarray(scores, dtype=float)
    keep = np.isfinite(y)
    if np.unique(n[keep]).size < MIN_SIZES:
        return None
    start = (float(min(1.0, y[keep].max())), 1.0, 0.5)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            (a, b, c), _ = curve_fit(
                _curve,
                n[keep],
                y[keep],
                p0=start,
                bounds=([0.0, 0.0, 1e-3], [1.0, 100.0, 3.0]),
                maxfev=5000,
            )
    except (RuntimeError, ValueError):
        return None
    return PowerLaw(float(a), float(b), float(c))


def _crossings(first: PowerLaw, second: PowerLaw, grid: np.ndarray) -> np.ndarray:
    """Sizes on `grid` where `second − first` changes sign (linear on log size)."""
    difference = second(grid) - first(grid)
    signs = np.sign(difference)
    change = np.flatnonzero(signs[:-1] * signs[1:] < 0)
    logs = np.log(grid)
    share = difference[change] / (difference[change] - difference[change + 1])
    return np.exp(logs[change] + share * (logs[change + 1] - logs[change]))


@dataclass(frozen=True)
class CurveFits:
    """Both families' fits, their 95 % bands on `grid`, and where the fitted curves change
    order (first change within `SEARCH`) with its bootstrap interval."""

    grid: np.ndarray
    fits: dict[str, PowerLaw]
    low: dict[str, np.ndarray]
    high: dict[str, np.ndarray]
    tried: tuple[float, float]
    crossing: float | None
    crossing_low: float
    crossing_high: float
    crossing_share: float  # share of refitted resamples whose curves change order at all

    def describe(self, names: dict[str, str]) -> str:
        """One clause for the verdict's end: the asymptotes, and where the fits cross, labelled
        as inside the tried range or as an extrapolation."""
        asymptotes = ", ".join(
            f"{names[family]} {fit.asymptote:.3f}" for family, fit in self.fits.items()
        )
        line = f"inverse power-law fits (a − b·n^−c): asymptotes {asymptotes}"
        low, high = self.tried
        if self.crossing is None:
            return (
                f"{line}; the fitted curves do not cross between {SEARCH[0]:.0f} and "
                f"{SEARCH[1]:.0e} images (they do in {self.crossing_share:.0%} of resamples)"
            )
        interval = f"95 % interval [{self.crossing_low:.0f}, {self.crossing_high:.0f}]"
        first, second = self.fits.values()
        below = self.crossing / 2
        ahead = list(self.fits)[1 if second(below) > first(below) else 0]
        order = f"{names[ahead]} ahead below it"
        if low <= self.crossing <= high:
            where = f"cross at ≈ {self.crossing:.0f} images ({order}), inside the tried range"
        else:
            where = (
                f"would cross at ≈ {self.crossing:.0f} images ({order}) — an extrapolation "
                f"beyond the tried {low:.0f}–{high:.0f}"
            )
        share = f"{self.crossing_share:.0%} of resamples"
        return f"{line}; the fitted curves {where} ({interval}, {share})"


def fit_curves(
    sizes: Sequence[float],
    scores: dict[str, np.ndarray],
    resampled: dict[str, np.ndarray],
    confidence: float = 0.95,
    refits: int = 200,
) -> CurveFits | None:
    """Fits of both families to their mean `scores` per size (same order as `sizes`), bands and
    crossing from refitting the first `refits` bootstrap resamples (`resampled[family]`:
    resamples x sizes). None when a family cannot be fitted (too few sizes)."""
    families = list(scores)
    fits = {family: fit_power_law(sizes, scores[family]) for family in families}
    if any(fit is None for fit in fits.values()):
        return None
    tried = (float(np.min(sizes)), float(np.max(sizes)))
    grid = np.geomspace(tried[0] / 2, tried[1] * 2, 60)
    search = np.geomspace(*SEARCH, 400)
    curves: dict[str, list[np.ndarray]] = {family: [] for family in families}
    crossings = []
    count = min(refits, *(len(resampled[f]) for f in families))
    for index in range(count):
        refit = {f: fit_power_law(sizes, resampled[f][index]) for f in families}
        if any(fit is None for fit in refit.values()):
            continue
        for family, fit in refit.items():
            curves[family].append(fit(grid))
        found = _crossings(refit[families[0]], refit[families[1]], search)
        crossings.append(found[0] if found.size else np.nan)
    tail = 100 * (1 - confidence) / 2
    for family in families:  # no resample could be refitted: a band of the fit alone
        curves[family] = curves[family] or [fits[family](grid)]  # type: ignore[misc]
    low = {f: np.percentile(curves[f], tail, axis=0) for f in families}
    high = {f: np.percentile(curves[f], 100 - tail, axis=0) for f in families}
    found = np.asarray(crossings, dtype=float)
    found = found[np.isfinite(found)]
    crossing = _crossings(fits[families[0]], fits[families[1]], search)
    bounds = np.percentile(found, [tail, 100 - tail]) if found.size else (np.nan, np.nan)
    return CurveFits(
        grid,
        fits,  # type: ignore[arg-type]  # checked above: none is None
        low,
        high,
        tried,
        float(crossing[0]) if crossing.size else None,
        float(bounds[0]),
        float(bounds[1]),
        found.size / max(1, len(crossings)),
    )
