"""How far a long stage has got: elapsed time and an estimate of the time left, as one line."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol


class EpochScores(Protocol):
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
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
class EpochClock:
    """One fold's training clock, started when the fold starts."""

    epochs: int
    started: float = field(default_factory=time.monotonic)

    def line(self, family: str, fold: int, record: EpochScores, now: float | None = None) -> str:
        elapsed = (time.monotonic() if now is None else now) - self.started
        eta = remaining(elapsed, record.epoch, self.epochs)
        return (
            f"{family} fold {fold} epoch {record.epoch}/{self.epochs}: "
            f"loss {record.train_loss:.4f} train / {record.val_loss:.4f} val, "
            f"val accuracy {record.val_accuracy:.3f}, "
            f"elapsed {duration(elapsed)}, ETA {duration(eta)}"
        )
