"""A training step's parts: the products are profiled apart from the rest, the set-up of a
training is left out, and the parts add up to the step."""

from __future__ import annotations

import math

import pytest

from benchmarks import step_parts
from benchmarks.step_parts import StepParts, measure, parts_table, per_step_ms
from glasses.config import resolve_config


def test_the_parts_add_up_to_the_step_and_are_given_against_the_floor() -> None:
    parts = StepParts("cnn", floor_ms=10.0, step_ms=30.0, products_ms=12.0, augmentation_ms=5.0)
    assert parts.other_ms == pytest.approx(13.0)
    table = parts_table([parts])
    assert table.loc[("cnn", "whole step"), "x floor"] == pytest.approx(3.0)
    assert table.loc[("cnn", "convolutions and matrix products"), "x floor"] == pytest.approx(1.2)
    assert table.loc[("cnn", "everything else"), "ms / step"] == pytest.approx(13.0)


def test_a_training_set_up_is_left_out_of_the_time_per_step() -> None:
    calls = []

    def seconds(steps: int) -> float:  # 2 s of set-up, then 10 ms a step
        calls.append(steps)
        return 2.0 + 0.010 * steps

    assert per_step_ms(seconds) == pytest.approx(10.0)
    assert calls[0] == step_parts.STEPS  # the untimed first call


@pytest.mark.parametrize("family", ["cnn", "scatnet"])
def test_a_real_step_is_measured_in_its_parts(monkeypatch, family) -> None:
    config = resolve_config("tiny")
    monkeypatch.setattr(step_parts, "STEPS", 4)
    data = step_parts._inputs(family, config)
    assert step_parts._products_seconds(family, config, data, 4) > 0  # its products were profiled
    parts = measure(family, config, gflops=100.0)
    assert parts.floor_ms > 0
    assert all(math.isfinite(ms) for ms in (parts.step_ms, parts.products_ms, parts.other_ms))
    # Only the CNN augments its batches; the ScatNet's head reads cached coefficients.
    assert (parts.augmentation_ms > 0) == (family == "cnn")
