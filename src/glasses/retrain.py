"""What a scheduled re-run decides, from what it has found: the one place for that policy.

`decide` is pure: the retrain flow gathers `Facts` step by step (discovery, validation, drift,
retraining) and asks after each step; `None` means "not decided yet, take the next step".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from glasses.drift import DriftResult
from glasses.families import Family


class Outcome(StrEnum):
    NO_DATA = "no data"  # nothing new in incoming
    REJECTED = "rejected"  # the batch failed validation and was quarantined
    NO_DRIFT = "no drift"  # accepted as a new version, not retrained
    PROMOTED = "promoted"  # retrained, and a challenger became champion
    KEPT = "kept"  # retrained, and every champion stayed
    SKIPPED = "skipped"  # another import held the dataset's lock


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str


# Whose champion names the dataset version a re-run builds on (its `dataset_version` tag): the
# families' champions may have been trained on different versions, and a re-run needs one.
REFERENCE_FAMILY: Family = "cnn"


class TestVerdict(Protocol):
    """A family's registered challenger, tested against its champion on the fixed test split."""

    version: str
    champion_version: str
    decision: str


@dataclass(frozen=True)
class Facts:
    """What a re-run has found so far; each field stays at its default until its step ran."""

    incoming: str
    reference: str  # the dataset version the champion was trained on
    batch: str | None = None  # id of the new batch; None: nothing new
    batch_files: int = 0
    problems: tuple[str, ...] | None = None  # the batch's validation failures
    version: str | None = None  # the staged version: reference + batch
    reference_images: int = 0
    new_images: int = 0  # images of `version` that the reference lacks
    drift: DriftResult | None = None
    tests: Mapping[str, TestVerdict] | None = None  # by family, after retraining

    @property
    def new_share(self) -> float:
        """New images relative to the reference's."""
        return self.new_images / max(self.reference_images, 1)


def decide(facts: Facts, min_new_share: float) -> Decision | None:
    """The re-run's outcome, or None while the facts do not settle it yet.

    Retraining is worth its cost when the batch drifted or when it is large (`min_new_share` of
    the reference); a challenger that wins on the fixed test split has already been promoted by
    the registry step, so retrained runs only report whether that happened.
    """
    if facts.batch is None:
        return Decision(
            Outcome.NO_DATA,
            f"nothing new in {facts.incoming} since dataset version {facts.reference}",
        )
    if facts.problems is None:
        return None
    if facts.problems:
        return Decision(Outcome.REJECTED, f"batch {facts.batch}: " + "; ".join(facts.problems))
    if facts.drift is None:
        return None
    if not facts.drift.drifted and facts.new_share < min_new_share:
        return Decision(
            Outcome.NO_DRIFT,
            f"accepted as dataset version {facts.version}; no drift and new share "
            f"{facts.new_share:.0%} < {min_new_share:.0%}: not retrained",
        )
    if facts.tests is None:
        return None
    promoted = any(t.champion_version == t.version for t in facts.tests.values())
    why = "drift detected" if facts.drift.drifted else f"new share {facts.new_share:.0%}"
    return Decision(
        Outcome.PROMOTED if promoted else Outcome.KEPT,
        f"retrained on dataset version {facts.version} ({why}); "
        + "; ".join(f"{family}: {t.decision}" for family, t in facts.tests.items()),
    )


def notes(facts: Facts) -> list[str]:
    """One line per finding, for the run summary."""
    lines = []
    if facts.batch is not None:
        lines.append(f"batch {facts.batch}: {facts.batch_files} new image(s)")
    if facts.drift is not None:
        drifted = ", ".join(facts.drift.drifted_columns) or "none"
        lines.append(
            f"drift share {facts.drift.drift_share:.2f} ({drifted}); "
            f"new images {facts.new_share:.0%} of version {facts.reference}"
        )
    for family, test in (facts.tests or {}).items():
        lines.append(f"{family}: v{test.version}: {test.decision}")
    return lines
