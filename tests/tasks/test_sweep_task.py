"""A sweep point given references: trained on exactly `size` images, paired across families,
and reused by a re-run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tasks.sweep as sweep_task
from glasses.config import resolve_config
from glasses.data.reference import image_set
from glasses.data.splits import make_split
from glasses.scattering import cached_coefficients
from tasks.sweep import SweepPoint, sweep_point

TINY = resolve_config("tiny")


@pytest.fixture
def sweep_inputs(image_arrays, references):
    pixels, labels = image_arrays(per_class=12)
    data = references.data(pixels, labels)
    J, L = TINY.scatnet.J, TINY.scatnet.L
    data = data.with_coefficients(cached_coefficients(pixels, J, L, Path(data.cache_dir)))
    split = make_split(image_set(data).manifest, 0.25, 2, TINY.seed)
    return data, split


def test_sweep_point_scores_the_test_split_and_is_reused(sweep_inputs, monkeypatch) -> None:
    data, split = sweep_inputs
    points = {f: sweep_point.fn(f, 8, 0, TINY, data, split) for f in ("cnn", "scatnet")}
    for family, point in points.items():
        assert isinstance(point, SweepPoint) and point.model == family
        assert len(point.predictions) == split.test.sum()
        assert 0 <= point.balanced_accuracy <= 1

    def untrainable(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(sweep_task, "fit", untrainable)
    again = sweep_point.fn("cnn", 8, 0, TINY, data, split)
    np.testing.assert_array_equal(again.predictions, points["cnn"].predictions)
    assert again.balanced_accuracy == points["cnn"].balanced_accuracy
    for size, repeat in ((8, 1), (6, 0)):  # another subset: trained
        with pytest.raises(AssertionError, match="trained again"):
            sweep_point.fn("cnn", size, repeat, TINY, data, split)
