"""Methods that know nothing must not look like explanations: a flat map, a seeded random map
and the image's edges, scored by every check on synthetic faces with ground-truth glasses masks,
beside a real method (IG of a model trained on those faces)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from glasses.config import resolve_config
from glasses.data.synthetic import generate_synthetic
from glasses.xai.correctness import (
    Evidence,
    cascading_randomisation,
    checks_table,
    deletion_evidence,
    deletion_fill,
    edge_map,
    localisation_evidence,
    method_ranking,
)
from glasses.xai.methods import explain

SIZE = 32
TINY = resolve_config("tiny")


def _ig(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    return explain(model, images, targets, "ig", TINY.xai, 0).maps


def _flat(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    return np.ones((len(images), SIZE, SIZE))


def _random(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Seeded noise per image: the same map whatever the model."""
    return np.stack([np.random.default_rng(i).random((SIZE, SIZE)) for i in range(len(images))])


def _edges(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    return edge_map(images)


METHODS: dict[str, Callable[..., np.ndarray]] = {
    "ig": _ig, "flat": _flat, "random": _random, "edges": _edges
}  # fmt: skip


def _faces(folder: Path) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, dict[int, np.ndarray]]:
    """120 synthetic 32 px faces, half with glasses: images, labels, people, masks by row."""
    csv = generate_synthetic(folder, 120, 60, SIZE, 0)
    table = pd.read_csv(csv)
    pixels = np.stack(
        [np.asarray(Image.open(csv.parent / p).convert("RGB")) for p in table["path"]]
    )
    masks = {
        row: np.asarray(Image.open(csv.parent / path).convert("L")) > 127
        for row, path in enumerate(table["mask_path"])
        if isinstance(path, str) and path
    }
    images = torch.tensor(pixels.transpose(0, 3, 1, 2) / 255, dtype=torch.float32)
    return images, torch.tensor(table["label"].to_numpy()), pd.factorize(table["group"])[0], masks


def _logistic_regression(images: torch.Tensor, labels: torch.Tensor) -> nn.Module:
    """A model that learns from the pixels in seconds (65 % held-out accuracy), so its maps
    carry what it learned."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 2))
    optimiser = torch.optim.LBFGS(model.parameters(), max_iter=100)

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = nn.functional.cross_entropy(model(images), labels)
        value = value + 1e-2 * model[1].weight.pow(2).sum()
        value.backward()
        return value

    optimiser.step(loss)
    return model.eval()


@pytest.fixture(scope="module")
def checks(tmp_path_factory) -> pd.DataFrame:
    """`checks_table` of the four methods on the 40 held-out faces (22 with a mask)."""
    images, labels, people_of, masks = _faces(tmp_path_factory.mktemp("faces") / "set")
    held_out = np.arange(len(labels)) % 3 == 0
    model = _logistic_regression(images[~held_out], labels[~held_out])
    rows = np.flatnonzero(held_out)
    people = {int(r): int(people_of[r]) for r in rows}
    classes = {int(r): int(labels[r]) for r in rows}
    shown, targets = images[rows], labels[rows]
    fills = torch.stack([deletion_fill(image, "blur") for image in shown])
    evidence = []
    for name, method in METHODS.items():
        maps = method(model, shown, targets)
        cascade = cascading_randomisation(model, method, shown, targets, original=maps)
        at = rows[cascade["image"].to_numpy()]
        cascade = cascade.assign(person=[people[r] for r in at], label=[classes[r] for r in at])
        evidence.append(
            Evidence(
                "linear",
                name,
                localisation_evidence(rows, maps, masks, people, classes),
                deletion_evidence(model, shown, targets, maps, fills, rows, people, classes, 10),
                cascade,
            )
        )
    return checks_table(evidence)


def test_no_method_that_knows_nothing_ranks_above_the_real_one(checks) -> None:
    ranking = method_ranking(checks).set_index("method")
    assert ranking.loc["ig", "rank"] == 1
    for name in ("flat", "random", "edges"):
        assert ranking.loc[name, "rank"] > ranking.loc["ig", "rank"]
        assert ranking.loc[name, "beats"] < ranking.loc["ig", "beats"]


def test_the_flat_map_scores_chance(checks) -> None:
    flat = checks[checks["method"] == "flat"].set_index("check")
    pointing = flat.loc["pointing game"]
    assert pointing["low"] < 0 < pointing["high"] and pointing["verdict"] == "undecided"
    assert flat.loc["relevance mass", "difference"] == pytest.approx(0.0, abs=1e-12)
    assert flat.loc["deletion", "verdict"] == "undecided"  # ties drawn: a random order
    assert (flat["verdict"] != "beats").all()


def test_the_random_map_beats_nothing_and_fails_randomisation(checks) -> None:
    random = checks[checks["method"] == "random"].set_index("check")
    for name in ("relevance mass", "pointing game", "deletion"):
        assert random.loc[name, "verdict"] == "undecided"
    assert random.loc["randomisation (Spearman)", "verdict"] == "worse"


def test_the_edge_map_survives_randomisation_at_its_own_control(checks) -> None:
    """The edges are their own control: the randomisation difference is exactly 0. (Its mass
    on the glasses does beat chance: frames are edges, which is why mass alone is not enough.)"""
    edges = checks[checks["method"] == "edges"].set_index("check")
    assert edges.loc["randomisation (Spearman)", "difference"] == pytest.approx(0.0, abs=1e-9)
    assert edges.loc["randomisation (Spearman)", "verdict"] == "undecided"
    assert edges.loc["deletion", "verdict"] != "beats"
