"""Promotion rule: a challenger replaces the champion only when it wins."""

from __future__ import annotations

from glasses.promotion import challenger_wins


def test_a_worse_challenger_keeps_the_champion():
    assert not challenger_wins({"accuracy": 0.80, "f1": 0.9}, {"accuracy": 0.85, "f1": 0.8}, 0.0)


def test_a_better_challenger_wins_without_margin():
    assert challenger_wins({"accuracy": 0.86, "f1": 0.5}, {"accuracy": 0.85, "f1": 0.9}, 0.0)


def test_equal_accuracy_is_settled_by_f1_only_without_margin():
    assert challenger_wins({"accuracy": 0.85, "f1": 0.9}, {"accuracy": 0.85, "f1": 0.8}, 0.0)
    assert not challenger_wins({"accuracy": 0.85, "f1": 0.8}, {"accuracy": 0.85, "f1": 0.8}, 0.0)


def test_the_margin_must_be_exceeded():
    champion = {"accuracy": 0.80, "f1": 0.8}
    assert not challenger_wins({"accuracy": 0.805, "f1": 0.9}, champion, 0.01)
    assert challenger_wins({"accuracy": 0.82, "f1": 0.7}, champion, 0.01)
