"""The re-run's decision from its facts: every outcome, and no decision before the facts allow."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
import pytest

from glasses.drift import DriftResult
from glasses.retrain import Decision, Facts, Outcome, decide, notes

MIN_SHARE = 0.2


def drift(drifted: bool) -> DriftResult:
    return DriftResult(
        drifted, 0.6 if drifted else 0.1, ["mean"] if drifted else [], pd.DataFrame(), "", {}
    )


@dataclass(frozen=True)
class Verdict:
    version: str
    champion_version: str
    decision: str


FOUND = Facts("incoming", "ref0", batch="b1", batch_files=12)
VALID = replace(FOUND, problems=())
MEASURED = replace(VALID, version="v1", reference_images=100, new_images=12, drift=drift(False))


def test_nothing_new_is_no_data_naming_folder_and_version() -> None:
    decision = decide(Facts("incoming", "ref0"), MIN_SHARE)
    assert decision == Decision(
        Outcome.NO_DATA, "nothing new in incoming since dataset version ref0"
    )


def test_no_decision_before_validation_drift_or_training() -> None:
    assert decide(FOUND, MIN_SHARE) is None
    assert decide(VALID, MIN_SHARE) is None
    assert decide(replace(MEASURED, new_images=20), MIN_SHARE) is None  # 20 % of 100: retrain


def test_a_validation_failure_rejects_with_every_reason() -> None:
    decision = decide(replace(FOUND, problems=("a.png missing", "b.png two labels")), MIN_SHARE)
    assert decision.outcome is Outcome.REJECTED
    assert decision.reason == "batch b1: a.png missing; b.png two labels"


def test_a_small_batch_without_drift_is_accepted_not_retrained() -> None:
    decision = decide(MEASURED, MIN_SHARE)
    assert decision.outcome is Outcome.NO_DRIFT
    assert "dataset version v1" in decision.reason and "12% < 20%" in decision.reason


@pytest.mark.parametrize(
    ("facts", "why"),
    [
        (replace(MEASURED, drift=drift(True)), "drift detected"),
        (replace(MEASURED, new_images=30), "new share 30%"),
    ],
)
def test_retrained_runs_report_whether_a_challenger_was_promoted(facts, why) -> None:
    kept = {"cnn": Verdict("3", "1", "kept v1"), "scatnet": Verdict("4", "2", "kept v2")}
    assert decide(facts, MIN_SHARE) is None
    decision = decide(replace(facts, tests=kept), MIN_SHARE)
    assert decision.outcome is Outcome.KEPT
    assert decision.reason == (
        f"retrained on dataset version v1 ({why}); cnn: kept v1; scatnet: kept v2"
    )
    promoted = kept | {"scatnet": Verdict("4", "4", "promoted")}
    assert decide(replace(facts, tests=promoted), MIN_SHARE).outcome is Outcome.PROMOTED


def test_notes_list_what_was_found() -> None:
    assert notes(Facts("incoming", "ref0")) == []
    found = replace(MEASURED, drift=drift(True), tests={"cnn": Verdict("3", "3", "promoted")})
    assert notes(found) == [
        "batch b1: 12 new image(s)",
        "drift share 0.60 (mean); new images 12% of version ref0",
        "cnn: v3: promoted",
    ]
