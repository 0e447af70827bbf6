"""The progress line of a training: step of budget, losses, elapsed time and an honest ETA."""

from __future__ import annotations

import pytest

from glasses.progress import TrainingClock, duration, remaining, study_estimate
from glasses.training import Check


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (42.4, "42s"), (59.6, "1m00s"), (185, "3m05s"), (3725, "1h02m"), (-3, "0s")],
)
def test_duration(seconds, shown) -> None:
    assert duration(seconds) == shown


def test_remaining_extrapolates_the_pace_so_far() -> None:
    assert remaining(10.0, 25, 100) == 30.0
    assert remaining(10.0, 100, 100) == 0.0 and remaining(0.0, 0, 100) == 0.0


def test_line_names_family_fold_step_and_inner_validation_when_there_is_one() -> None:
    clock = TrainingClock(steps=100, started=0.0)
    watched = Check(step=25, train_loss=0.5, train_accuracy=0.8, val_loss=0.6, val_accuracy=0.75)
    line = clock.line("cnn-fold-2", watched)
    assert line.startswith("cnn-fold-2 step 25/100: loss 0.5000 / 0.6000 inner val")
    assert "inner val accuracy 0.750" in line and "ETA at most" in line
    unwatched = Check(step=50, train_loss=0.4, train_accuracy=0.9)
    assert clock.line("scatnet-refit", unwatched).startswith(
        "scatnet-refit step 50/100: loss 0.4000 train,"
    )


def test_study_estimate_counts_rounds_of_parallel_trainings() -> None:
    assert study_estimate(60.0, 5, 2) == 180.0  # 3 rounds of 2 at once
    assert study_estimate(60.0, 4, 1) == 240.0
    assert study_estimate(60.0, 0, 2) == 0.0
