"""How far a long stage has got: elapsed time and an estimate of the time left, as one line."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol


class CheckScores(Protocol):
    step: int  # optimiser steps so far
    train_loss: float
    val_loss: float  # NaN without an inner validation split
    val_accuracy: float


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`: short enough for a log line, exact enough for a wait."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def remaining(elapsed: float, done: int, total: int) -> float:
    """Time left at the average pace so far; 0 once done."""
    return elapsed / done * (total - done) if 0 < done < total else 0.0


@dataclass
class TrainingClock:
    """One training's clock, started when it starts; the ETA assumes the whole step budget
    (early stopping can only make it shorter)."""

    steps: int
    started: float = field(default_factory=time.monotonic)

    def line(self, training: str, check: CheckScores) -> str:
        """`training` names it in the line: `cnn fold 2`, `scatnet refit`, `cnn sweep 150 r2`."""
        elapsed = time.monotonic() - self.started
        eta = remaining(elapsed, check.step, self.steps)
        validation = (
            f" / {check.val_loss:.4f} inner val, inner val accuracy {check.val_accuracy:.3f}"
            if math.isfinite(check.val_loss)
            else " train"
        )
        return (
            f"{training} step {check.step}/{self.steps}: "
            f"loss {check.train_loss:.4f}{validation}, "
            f"elapsed {duration(elapsed)}, ETA at most {duration(eta)}"
        )


def study_estimate(one_training: float, trainings_left: int, at_once: int) -> float:
    """Seconds the study's remaining trainings take, `at_once` in parallel, each as long as the
    first one timed. Rough on purpose: sweep points train on fewer images (shorter), and the
    explanations are not counted (longer)."""
    return one_training * math.ceil(max(0, trainings_left) / max(1, at_once))
