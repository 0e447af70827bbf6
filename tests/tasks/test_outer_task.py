"""A point on an outer split given references: trained on exactly its rows (the split's whole
training part, or `size` of them), scored on the split's test part, paired across families, and
reused by a re-run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tasks.outer as outer_task
from glasses.config import resolve_config
from glasses.data.reference import image_set
from glasses.outer import PointPlan, outer_design, point_rows
from glasses.results import point_seed
from glasses.scattering import cached_coefficients
from tasks.outer import OuterPoint, outer_points

TINY = resolve_config("tiny")


@pytest.fixture
def outer_inputs(image_arrays, references):
    pixels, labels = image_arrays(per_class=12)
    data = references.data(pixels, labels)
    J, L = TINY.scatnet.J, TINY.scatnet.L
    data = data.with_coefficients(cached_coefficients(pixels, J, L, Path(data.cache_dir)))
    return data, outer_design(image_set(data).manifest, TINY)


def test_outer_point_scores_its_splits_test_part_and_is_reused(outer_inputs, monkeypatch) -> None:
    data, design = outer_inputs
    test = design.test_mask(1)
    plan = PointPlan(outer=1, size=8, repeat=0)
    points = {f: outer_points.fn(f, TINY, data, [plan], [test])[0] for f in ("cnn", "scatnet")}
    for family, point in points.items():
        assert isinstance(point, OuterPoint) and point.model == family
        assert (point.outer, point.size) == (1, 8)
        assert len(point.predictions) == test.sum()
        assert 0 <= point.balanced_accuracy <= 1

    def untrainable(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(outer_task, "fit_many", untrainable)
    (again,) = outer_points.fn("cnn", TINY, data, [plan], [test])
    np.testing.assert_array_equal(again.predictions, points["cnn"].predictions)
    assert again.balanced_accuracy == points["cnn"].balanced_accuracy
    others = (
        PointPlan(1, 8, 1),  # other rows
        PointPlan(1, 6, 0),
        PointPlan(0, 8, 0),
        PointPlan(1, 8, 0, budget=2.0),  # same rows, twice the steps
    )
    for other in others:
        with pytest.raises(AssertionError, match="trained again"):
            outer_points.fn("cnn", TINY, data, [other], [design.test_mask(other.outer)])


def test_whole_training_part_never_touches_the_test_part(outer_inputs) -> None:
    data, design = outer_inputs
    manifest = image_set(data).manifest
    for outer in range(len(design.tests)):
        test = design.test_mask(outer)
        plan = PointPlan(outer, None, 0)
        rows = point_rows(manifest, test, plan, point_seed(TINY.seed, plan))
        np.testing.assert_array_equal(rows, np.flatnonzero(~test))
        sub = PointPlan(outer, 8, 0)
        subset = point_rows(manifest, test, sub, point_seed(TINY.seed, sub))
        assert len(subset) == 8 and not test[subset].any()


def test_points_of_one_task_train_together_as_they_would_alone(outer_inputs, monkeypatch) -> None:
    """Several ScatNet plans in one task (one stack per equal settings; a budget-check plan
    apart), each point what its own task gives; a stored point is reused, not retrained."""
    data, design = outer_inputs
    plans = [PointPlan(0, 8, 0), PointPlan(1, 10, 0), PointPlan(0, 8, 0, budget=2.0)]
    tests = [design.test_mask(plan.outer) for plan in plans]
    no_resume = TINY.model_copy(
        update={"runtime": TINY.runtime.model_copy(update={"resume": False})}
    )
    alone = [
        outer_points.fn("scatnet", no_resume, data, [plan], [test])[0]
        for plan, test in zip(plans, tests, strict=True)
    ]
    stacks = []
    real = outer_task.fit_many

    def spy(family, config, inputs, labels, manifest, jobs):
        stacks.append(len(jobs))
        return real(family, config, inputs, labels, manifest, jobs)

    monkeypatch.setattr(outer_task, "fit_many", spy)
    together = outer_points.fn("scatnet", no_resume, data, plans, tests)
    assert stacks == [2, 1]
    for one, other in zip(alone, together, strict=True):
        assert (other.outer, other.size, other.budget, other.steps) == (
            one.outer, one.size, one.budget, one.steps,
        )  # fmt: skip
        np.testing.assert_array_equal(other.predictions, one.predictions)
        assert other.final_train_loss == pytest.approx(one.final_train_loss, rel=1e-4)
    stacks.clear()
    again = outer_points.fn("scatnet", TINY, data, plans, tests)
    assert stacks == [] and [p.balanced_accuracy for p in again] == [
        p.balanced_accuracy for p in together
    ]
