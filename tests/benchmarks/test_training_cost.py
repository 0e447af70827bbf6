"""Training cost per image: window arithmetic, ratios, and one real measurement at `tiny`."""

from __future__ import annotations

import pytest
import torch

from benchmarks import training_cost
from benchmarks.training_cost import (
    WINDOW_STEPS,
    Cost,
    PlainLoop,
    measure,
    per_image_ms,
    timed_config,
)


def test_per_image_ms_is_the_fastest_window() -> None:
    # Windows of 8 steps x 16 images: 2 s, 1 s and 4 s -> 15.6, 7.8 and 31.3 ms per image.
    stamps = [(8, 10.0), (16, 12.0), (24, 13.0), (32, 17.0)]
    assert per_image_ms(stamps, 16) == pytest.approx(1000 / 128)


def test_per_image_ms_needs_a_window() -> None:
    with pytest.raises(ValueError, match="two"):
        per_image_ms([(8, 1.0)], 16)


def test_ratios_against_floor_and_plain_loop() -> None:
    cost = Cost("cnn", gflop_per_image=2.0, floor_ms=5.0, project_ms=6.0, plain_loop_ms=9.0)
    assert cost.floor_ratio == pytest.approx(1.2)
    assert cost.speedup == pytest.approx(1.5)


def test_timed_config_checks_every_window() -> None:
    config = timed_config("tiny")
    assert config.cnn.optimiser.check_every == WINDOW_STEPS["cnn"]
    assert config.scatnet.optimiser.check_every == WINDOW_STEPS["scatnet"]


def test_plain_loop_runs_the_cnn_in_nchw() -> None:
    """The seed's baseline has none of the project's layout change."""
    loop = PlainLoop.build("cnn", timed_config("tiny"))
    conv = loop.model.features[1]
    assert conv.weight.is_contiguous()
    assert loop.inputs.dtype == torch.float32 and loop.inputs.is_contiguous()


@pytest.mark.parametrize("family", ["cnn", "scatnet"])
def test_measure_times_the_pipelines_training(monkeypatch, family: str) -> None:
    for name, value in (("WINDOW_STEPS", {"cnn": 2, "scatnet": 2}), ("WINDOWS", 1), ("ROUNDS", 1)):
        monkeypatch.setattr(training_cost, name, value)
    cost = measure(family, timed_config("tiny"), gemm_gflops=100.0)
    assert cost.family == family
    assert cost.gflop_per_image > 0
    assert cost.floor_ms == pytest.approx(cost.gflop_per_image / 100.0 * 1e3)
    assert cost.project_ms > 0 and cost.plain_loop_ms > 0
