"""When a challenger replaces the champion: only when the two can be compared fairly, on the
same test data, and the challenger wins by a margin."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class Lineage:
    """What a registered model was trained on: its input size and its training images' content
    hashes (sha256 of the files), recorded with every registered version."""

    image_size: int
    training_sha256: frozenset[str]


def comparison_blocker(
    champion: Lineage | None, image_size: int, test_sha256: Collection[str]
) -> str | None:
    """Why the champion cannot be scored against a challenger on this test split (a phrase that
    follows "champion vN"); None if it can.

    A model of another input size cannot even take the images, and one that trained on some of
    the test images would be scored on what it memorised: neither comparison means anything.
    """
    if champion is None:
        return "records no input size or training images (registered before they were kept)"
    if champion.image_size != image_size:
        return (
            f"takes {champion.image_size} px images, this run {image_size} px "
            "(another profile or data.image_size)"
        )
    overlap = champion.training_sha256.intersection(test_sha256)
    if overlap:
        return f"trained on {len(overlap)} of this run's {len(test_sha256)} test images"
    return None


def challenger_wins(
    challenger: dict[str, float], champion: dict[str, float], margin: float
) -> bool:
    """Balanced accuracy must exceed the champion's by more than `margin` (accuracy would let a
    model that favours the majority class win); with no margin, equal balanced accuracy is
    settled by macro-F1. A tie keeps the champion: replacing a model has a cost of its own."""
    if margin > 0:
        return challenger["balanced_accuracy"] > champion["balanced_accuracy"] + margin
    return (challenger["balanced_accuracy"], challenger["macro_f1"]) > (
        champion["balanced_accuracy"],
        champion["macro_f1"],
    )
