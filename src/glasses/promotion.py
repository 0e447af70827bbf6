"""When a challenger replaces the champion: only when the two can be compared fairly, on the
same test data, and the challenger wins by a margin. The registry task supplies what it read
from the registry; every rule is here."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from glasses.inference import logits
from glasses.metrics import confusion, scores
from glasses.statistics import bootstrap_ci

FIRST_VERSION = "first version: takes the champion alias"
ALREADY_CHAMPION = "already champion"


@dataclass(frozen=True)
class Lineage:
    """What a registered model was trained on: its input size and its training images' content
    hashes (sha256 of the files), recorded with every registered version."""

    image_size: int
    training_sha256: frozenset[str]


def training_lineage(manifest: pd.DataFrame, train_rows: np.ndarray, image_size: int) -> Lineage:
    """The lineage of a model trained on `train_rows` of `manifest` at `image_size` pixels."""
    sha256 = manifest["sha256"].astype(str).to_numpy()
    return Lineage(image_size, frozenset(sha256[train_rows]))


def held_out_scores(
    model: nn.Module, pixels: torch.Tensor, labels: np.ndarray
) -> tuple[dict[str, float], np.ndarray]:
    """A model's scores (`glasses.metrics.scores`) and confusion matrix on test `pixels`
    (N x 3 x side x side, uint8) with true `labels`: what the challenger and the champion are
    compared on."""
    predictions = logits(model, pixels).argmax(1).numpy()
    return scores(labels, predictions), confusion(labels, predictions)


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


def decide_champion(
    version: str,
    result: Mapping[str, float],
    champion: str | None,
    champion_lineage: Callable[[], Lineage | None],
    champion_scores: Callable[[], Mapping[str, float] | str],
    image_size: int,
    test_sha256: Collection[str],
    margin: float,
) -> tuple[str, str]:
    """(champion version, why) after the new `version` scored `result` on the test split.

    `champion`: the current champion's version, None when there is none yet. Its lineage and
    its scores on the same test split are asked for only when needed: the lineage once a
    champion other than `version` exists, the scores once the lineage allows the comparison
    (`comparison_blocker`); `champion_scores` returns a reason instead of scores when the
    champion cannot be loaded. A champion that cannot be compared keeps its alias.
    """
    if champion is None:
        return version, FIRST_VERSION
    if champion == version:
        return version, ALREADY_CHAMPION
    blocker = comparison_blocker(champion_lineage(), image_size, test_sha256)
    if blocker is None:
        scored = champion_scores()
        if isinstance(scored, str):
            blocker = f"cannot be loaded: {scored}"
    if blocker is not None:
        return champion, (
            f"not compared: champion v{champion} {blocker}; kept it — move the alias "
            "by hand if this version should replace it"
        )
    new = (result["balanced_accuracy"], result["macro_f1"])
    old = (scored["balanced_accuracy"], scored["macro_f1"])
    versus = (
        f"balanced accuracy/macro-F1 new {new[0]:.4f}/{new[1]:.4f} vs "
        f"v{champion} {old[0]:.4f}/{old[1]:.4f}"
    )
    if challenger_wins(result, scored, margin):
        return version, f"promoted: {versus} (margin {margin})"
    return champion, f"kept v{champion}: {versus} (margin {margin})"


def accuracy_interval(matrix: np.ndarray) -> tuple[float, float, float]:
    """(accuracy, low, high) on a held-out split from its confusion `matrix`: a 95 % percentile
    bootstrap over the test images. It covers the draw of these images only, not of the people
    (several images of one person make it too narrow) nor of the training; the study's
    intervals over outer splits and people are the ones to compare families by."""
    correct = np.repeat([1.0, 0.0], [int(np.trace(matrix)), int(matrix.sum() - np.trace(matrix))])
    return bootstrap_ci(correct)


def version_description(
    scores_: Mapping[str, float],
    interval: tuple[float, float, float],
    fingerprint: str,
    run_link: str,
    decision: str,
) -> str:
    """A registered version's description (markdown, as the registry page shows it): its
    held-out scores with the interval, the data it came from, and where it was trained."""
    accuracy, low, high = interval
    return (
        f"Held-out balanced accuracy **{scores_['balanced_accuracy']:.3f}**, accuracy "
        f"{accuracy:.3f} (95 % interval over test images [{low:.3f}, {high:.3f}]).\n\n"
        f"Data fingerprint `{fingerprint}`. Trained in MLflow run {run_link}.\n\n"
        f"Champion decision: {decision}."
    )
