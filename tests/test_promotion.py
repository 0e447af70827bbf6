"""Promotion rule: a challenger replaces the champion only when the two can be compared and the
challenger wins on balanced accuracy."""

from __future__ import annotations

from glasses.promotion import Lineage, challenger_wins, comparison_blocker


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
