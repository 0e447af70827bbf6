"""Model Registry: register each family's model, test it from the registry, and move the
`champion` alias only when the new version can be compared with it and wins on the same test
split."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import mlflow.pytorch
import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from prefect import task
from prefect.cache_policies import NO_CACHE
from torch import nn

import mlflow
from glasses.crossval import Family, pixels_to_input
from glasses.metrics import confusion, scores
from glasses.plots import confusion_figure
from glasses.promotion import Lineage, challenger_wins, comparison_blocker
from glasses.training import default_device, predict
from tasks.tracking import client, log_figure, log_metrics

REGISTERED_NAMES: dict[Family, str] = {"cnn": "glasses-cnn", "scatnet": "glasses-scatnet"}
CHAMPION = "champion"
CHALLENGER = "challenger"
LINEAGE_FILE = "lineage/training_sha256.txt"


@task(name="register-model", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def register_model(family: Family, model: nn.Module, pixels: torch.Tensor, run_id: str) -> str:
    """Log the model with signature and input example under the family run; return its version.

    `log_model` works on the fluent active run, which is thread-local: it is resumed here, in
    this task's own thread, by id. Saved as a pickled `nn.Module`, not MLflow's default pt2
    export: exporting the scattering transform's graph took 40-100 s per model here, and the
    explanation and filter figures need the real modules (layers, wavelet filters) back.
    """
    client()
    example = pixels_to_input(pixels[:2]).numpy()
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            registered_model_name=REGISTERED_NAMES[family],
            signature=infer_signature(example, output),
            input_example=example,
            serialization_format="pickle",
            pip_requirements=model_requirements(),
        )
    return str(info.registered_model_version)


def model_requirements() -> list[str]:
    """Pinned from this environment: MLflow would otherwise infer them by loading the model in a
    subprocess, about 5 s per model. Unpickling also needs the `glasses` package itself."""
    return [f"{name}=={metadata.version(name)}" for name in ("torch", "kymatio", "numpy", "mlflow")]


def record_lineage(tracking, name: str, version: str, lineage: Lineage) -> None:
    """Input size and training-image hashes with the version, for later compatibility checks:
    the size as a tag, the hashes as an artifact of the version's run (too long for a tag)."""
    run_id = tracking.get_model_version(name, version).run_id
    tracking.log_text(run_id, "\n".join(sorted(lineage.training_sha256)), LINEAGE_FILE)
    tracking.set_model_version_tag(name, version, "image_size", str(lineage.image_size))
    tracking.set_model_version_tag(
        name, version, "training_images", str(len(lineage.training_sha256))
    )


def read_lineage(tracking, name: str, version: str) -> Lineage | None:
    """The lineage `record_lineage` stored, or None for a version registered without one."""
    model_version = tracking.get_model_version(name, version)
    size = model_version.tags.get("image_size")
    if size is None:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        try:
            path = tracking.download_artifacts(model_version.run_id, LINEAGE_FILE, scratch)
        except (MlflowException, OSError):
            return None
        hashes = Path(path).read_text().split()
    return Lineage(int(size), frozenset(hashes))


@dataclass(frozen=True)
class HeldOutResult:
    version: str
    scores: dict[str, float]
    champion_version: str
    decision: str

    @property
    def accuracy(self) -> float:
        return self.scores["accuracy"]


def _test_scores(model: nn.Module, pixels: torch.Tensor, labels: np.ndarray):
    device = default_device()
    model = model.to(device).eval()
    logits = predict(model, pixels, lambda batch, _: pixels_to_input(batch), 64, device)
    predictions = logits.argmax(1).numpy()
    return scores(labels, predictions), confusion(labels, predictions)


@task(name="evaluate-on-test", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def evaluate_on_test(
    family: Family,
    version: str,
    pixels: torch.Tensor,
    labels: np.ndarray,
    run_id: str,
    lineage: Lineage,
    test_sha256: list[str],
    margin: float = 0.0,
) -> HeldOutResult:
    """Score the registered version, loaded from the registry (not memory), on the test split.

    The new version records its `lineage` and takes the `challenger` alias; `champion` moves to
    it only when the current champion can be compared on this test split (same input size, none
    of these test images in its training data) and the new version beats it, re-scored on the
    same test data, by `margin` (`glasses.promotion`).
    """
    tracking = client()
    name = REGISTERED_NAMES[family]
    record_lineage(tracking, name, version, lineage)
    model = mlflow.pytorch.load_model(f"models:/{name}/{version}")
    result, matrix = _test_scores(model, pixels, labels)
    log_metrics(tracking, run_id, {f"test_{k}": v for k, v in result.items()})
    title = f"{name} v{version}: test accuracy {result['accuracy']:.3f}"
    log_figure(
        tracking, run_id, confusion_figure(matrix, title), f"figures/{family}_confusion_test.png"
    )
    tracking.set_registered_model_alias(name, CHALLENGER, version)
    champion, decision = _decide_champion(
        tracking, name, version, result, pixels, labels, test_sha256, margin
    )
    if champion == version:
        tracking.set_registered_model_alias(name, CHAMPION, version)
    tracking.set_model_version_tag(name, version, "champion_decision", decision)
    tracking.set_tag(run_id, "champion_decision", decision)
    return HeldOutResult(version, result, champion, decision)


def _decide_champion(
    tracking,
    name: str,
    version: str,
    result: dict[str, float],
    pixels: torch.Tensor,
    labels: np.ndarray,
    test_sha256: list[str],
    margin: float,
) -> tuple[str, str]:
    """(champion version, why). The current champion is re-scored on this very test split, if
    it can be compared at all (`glasses.promotion.comparison_blocker`)."""
    try:
        current = tracking.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return version, "first version: takes the champion alias"
    if str(current.version) == version:
        return version, "already champion"
    blocker = comparison_blocker(
        read_lineage(tracking, name, str(current.version)), pixels.shape[-1], test_sha256
    )
    if blocker is not None:
        return str(current.version), (
            f"not compared: champion v{current.version} {blocker}; kept it — move the alias "
            "by hand if this version should replace it"
        )
    champion_scores, _ = _test_scores(
        mlflow.pytorch.load_model(f"models:/{name}@{CHAMPION}"), pixels, labels
    )
    new = (result["balanced_accuracy"], result["macro_f1"])
    old = (champion_scores["balanced_accuracy"], champion_scores["macro_f1"])
    versus = (
        f"balanced accuracy/macro-F1 new {new[0]:.4f}/{new[1]:.4f} vs "
        f"v{current.version} {old[0]:.4f}/{old[1]:.4f}"
    )
    if challenger_wins(result, champion_scores, margin):
        return version, f"promoted: {versus} (margin {margin})"
    return str(current.version), f"kept v{current.version}: {versus} (margin {margin})"
