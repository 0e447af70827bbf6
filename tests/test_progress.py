"""Progress lines: durations a person reads at a glance, an ETA from the pace so far."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from glasses.progress import EpochClock, duration, remaining


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (42.4, "42s"), (59.6, "1m00s"), (185, "3m05s"), (3725, "1h02m"), (-3, "0s")],
)
def test_duration(seconds, shown) -> None:
    assert duration(seconds) == shown


def test_remaining_is_the_average_pace_times_what_is_left() -> None:
    assert remaining(30.0, 3, 10) == pytest.approx(70.0)
    assert remaining(30.0, 10, 10) == 0.0
    assert remaining(0.0, 0, 10) == 0.0


@dataclass
class Record:
    epoch: int
    train_loss: float = 0.5
    val_loss: float = 0.25
    val_accuracy: float = 0.75


def test_epoch_line_names_family_fold_epoch_losses_accuracy_elapsed_and_eta() -> None:
    clock = EpochClock(epochs=10, started=100.0)
    line = clock.line("cnn", 2, Record(epoch=4), now=130.0)
    assert line == (
        "cnn fold 2 epoch 4/10: loss 0.5000 train / 0.2500 val, val accuracy 0.750, "
        "elapsed 30s, ETA 45s"
    )
