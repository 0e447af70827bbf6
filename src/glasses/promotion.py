"""When a challenger replaces the champion: on the same test data, by a margin."""

from __future__ import annotations


def challenger_wins(
    challenger: dict[str, float], champion: dict[str, float], margin: float
) -> bool:
    """Accuracy must exceed the champion's by more than `margin`; with no margin, equal accuracy
    is settled by F1. A tie keeps the champion: replacing a model has a cost of its own."""
    if margin > 0:
        return challenger["accuracy"] > champion["accuracy"] + margin
    return (challenger["accuracy"], challenger["f1"]) > (champion["accuracy"], champion["f1"])
