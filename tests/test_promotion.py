"""Promotion rule: a challenger replaces the champion only when the two can be compared and the
challenger wins on balanced accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from glasses.promotion import (
    Lineage,
    accuracy_interval,
    challenger_wins,
    comparison_blocker,
    decide_champion,
    held_out_scores,
    training_lineage,
)


def scores(balanced: float, macro_f1: float) -> dict[str, float]:
    return {"balanced_accuracy": balanced, "macro_f1": macro_f1}


def test_a_worse_challenger_keeps_the_champion():
    assert not challenger_wins(scores(0.80, 0.9), scores(0.85, 0.8), 0.0)


def test_a_better_challenger_wins_without_margin():
    assert challenger_wins(scores(0.86, 0.5), scores(0.85, 0.9), 0.0)


def test_equal_balanced_accuracy_is_settled_by_macro_f1_only_without_margin():
    assert challenger_wins(scores(0.85, 0.9), scores(0.85, 0.8), 0.0)
    assert not challenger_wins(scores(0.85, 0.8), scores(0.85, 0.8), 0.0)


def test_the_margin_must_be_exceeded():
    champion = scores(0.80, 0.8)
    assert not challenger_wins(scores(0.805, 0.9), champion, 0.01)
    assert challenger_wins(scores(0.82, 0.7), champion, 0.01)


def test_accuracy_alone_does_not_win():
    """A challenger that gains accuracy by predicting the majority class more often loses."""
    champion = {"accuracy": 0.80, **scores(0.78, 0.77)}
    challenger = {"accuracy": 0.85, **scores(0.60, 0.55)}
    assert not challenger_wins(challenger, champion, 0.0)


CHAMPION = Lineage(64, frozenset({"a", "b", "c"}))


def test_disjoint_training_and_test_images_of_one_size_are_comparable():
    assert comparison_blocker(CHAMPION, 64, ["d", "e"]) is None


def test_another_input_size_blocks_the_comparison():
    assert comparison_blocker(CHAMPION, 32, ["d"]) == (
        "takes 64 px images, this run 32 px (another profile or data.image_size)"
    )


def test_test_images_the_champion_trained_on_block_the_comparison():
    assert comparison_blocker(CHAMPION, 64, ["a", "d", "c"]) == (
        "trained on 2 of this run's 3 test images"
    )


def test_a_champion_without_lineage_is_not_compared():
    assert "records no input size" in comparison_blocker(None, 64, ["d"])


def never(*_):
    raise AssertionError("not to be asked")


def decide(champion, result=None, lineage=CHAMPION, champion_scores=None, sha=("d",), margin=0.0):
    return decide_champion(
        "5",
        result or scores(0.85, 0.8),
        champion,
        never if lineage is never else (lambda: lineage),
        never if champion_scores is None else (lambda: champion_scores),
        64,
        list(sha),
        margin,
    )


def test_the_first_version_takes_the_alias_without_asking_for_a_champion():
    assert decide(None, lineage=never) == ("5", "first version: takes the champion alias")


def test_a_version_already_champion_stays_champion():
    assert decide("5", lineage=never) == ("5", "already champion")


def test_a_winning_challenger_is_promoted_with_both_scores_in_the_reason():
    champion, why = decide("3", scores(0.86, 0.5), champion_scores=scores(0.85, 0.9))
    assert champion == "5"
    assert why == (
        "promoted: balanced accuracy/macro-F1 new 0.8600/0.5000 vs v3 0.8500/0.9000 (margin 0.0)"
    )


def test_a_losing_challenger_keeps_the_champion():
    champion, why = decide("3", scores(0.80, 0.9), champion_scores=scores(0.85, 0.8))
    assert champion == "3" and why.startswith("kept v3: balanced accuracy/macro-F1 new 0.8000")


def test_a_tie_keeps_the_champion():
    champion, why = decide("3", scores(0.85, 0.8), champion_scores=scores(0.85, 0.8))
    assert champion == "3" and why.startswith("kept v3")


def test_a_gain_within_the_margin_keeps_the_champion_and_beyond_it_promotes():
    kept = decide("3", scores(0.855, 0.9), champion_scores=scores(0.85, 0.8), margin=0.01)
    assert kept[0] == "3" and kept[1].endswith("(margin 0.01)")
    won = decide("3", scores(0.87, 0.7), champion_scores=scores(0.85, 0.8), margin=0.01)
    assert won[0] == "5"


def test_a_champion_that_cannot_be_compared_is_kept_without_being_scored():
    champion, why = decide("3", sha=("a", "d"))
    assert champion == "3"
    assert why == (
        "not compared: champion v3 trained on 1 of this run's 2 test images; kept it — move the "
        "alias by hand if this version should replace it"
    )


def test_a_champion_that_cannot_be_loaded_is_kept():
    champion, why = decide("3", champion_scores="no weights")
    assert champion == "3"
    assert why.startswith("not compared: champion v3 cannot be loaded: no weights; kept it")


def test_the_lineage_holds_the_training_rows_hashes():
    manifest = pd.DataFrame({"sha256": ["a", "b", "c", "d"]})
    assert training_lineage(manifest, np.array([0, 2]), 32) == Lineage(32, frozenset({"a", "c"}))


def test_held_out_scores_of_a_constant_model():
    class Always(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[0.0, 1.0]]).repeat(len(x), 1)

    pixels = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    result, matrix = held_out_scores(Always(), pixels, np.array([0, 1, 1, 1]))
    assert result["accuracy"] == 0.75 and result["balanced_accuracy"] == 0.5
    np.testing.assert_array_equal(matrix, [[0, 1], [0, 3]])


def test_accuracy_interval_brackets_the_held_out_accuracy() -> None:
    matrix = np.array([[30, 10], [5, 55]])  # 85 of 100 right
    accuracy, low, high = accuracy_interval(matrix)
    assert accuracy == pytest.approx(0.85)
    assert 0.75 < low < 0.85 < high < 0.93  # about ± 1.96 * sqrt(.85 * .15 / 100) = ± 0.07
    assert accuracy_interval(np.array([[4, 0], [0, 4]]))[0] == 1.0  # no spread: no bounds
