"""Model Registry: register each family's model, test it from the registry, and move the
`champion` alias only when the new version can be compared with it and wins on the same test
split."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from PIL import Image
from prefect import task
from prefect.cache_policies import NO_CACHE
from torch import nn

import glasses
import mlflow
from glasses.config import GlassesConfig
from glasses.data.reference import DataRef, image_set
from glasses.families import SPECS, Family
from glasses.inference import (
    SPEC,
    WEIGHTS,
    build_from_spec,
    model_spec,
    prediction_table,
    probabilities,
)
from glasses.labels import CLASS_NAMES
from glasses.plots import confusion_figure
from glasses.promotion import Lineage, decide_champion, held_out_scores, training_lineage
from mlflow import MlflowClient
from tasks.tracking import client, log_figure, log_metrics
from tasks.training import ModelRef

CHAMPION = "champion"
CHALLENGER = "challenger"
LINEAGE_FILE = "lineage/training_sha256.txt"
SERVED_MODEL = Path(__file__).with_name("served_model.py")  # MLflow "models from code"
# What the served model imports: `glasses` (logged in code_paths) and its dependencies.
SERVED_PACKAGES = (
    "mlflow", "torch", "kymatio", "numpy", "scipy", "pandas", "pillow", "scikit-learn",
    "matplotlib", "pydantic",
)  # fmt: skip


@task(name="register-model", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def register_model(trained: ModelRef, data: DataRef, example_rows: np.ndarray, run_id: str) -> str:
    """Log the trained model under the family run as a servable pyfunc model; return its
    version. Two of `example_rows` (test images) make the request example.

    Stored as a JSON description and tensors-only weights, with the `glasses` package as code
    (see `tasks.served_model`), not as a pickled module: nothing is unpickled on loading, and
    `mlflow models serve` works without this repository. `log_model` works on the fluent active
    run, which is thread-local: it is resumed here, in this task's own thread, by id.
    """
    model = trained.load()
    pixels = torch.from_numpy(image_set(data).pixels[example_rows[:2]])
    example = _example_request(pixels)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "spec.json").write_text(json.dumps(model_spec(model)))
        torch.save(model.state_dict(), folder / "weights.pt")
        package = shutil.copytree(
            Path(glasses.__file__).parent,
            folder / "code" / "glasses",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        answer = probabilities(model, pixels).numpy()
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(SERVED_MODEL),
                artifacts={SPEC: str(folder / "spec.json"), WEIGHTS: str(folder / "weights.pt")},
                code_paths=[str(package)],
                registered_model_name=SPECS[trained.family].registered_name,
                signature=infer_signature(example, prediction_table(answer, list(CLASS_NAMES))),
                input_example=example,
                pip_requirements=model_requirements(),
            )
    return str(info.registered_model_version)


def _example_request(pixels: torch.Tensor) -> pd.DataFrame:
    """A request as users send it: a column `image` of base64-encoded PNG files."""
    encoded = []
    for image in pixels.numpy().transpose(0, 2, 3, 1):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    return pd.DataFrame({"image": encoded})


def model_requirements() -> list[str]:
    """Pinned from this environment, without local build tags (`+cpu`) that no index serves:
    MLflow would otherwise infer them by loading the model in a subprocess (~5 s a model)."""
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in SERVED_PACKAGES]


class ModelUnavailable(ValueError):
    """A registered model that is not there, or that this version of glasses cannot load."""


_REFERENCE = re.compile(r"^(?:models:/)?(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def model_version(tracking: MlflowClient, reference: str) -> ModelVersion:
    """`NAME@ALIAS` or `NAME/VERSION` (with or without `models:/`) as a registry entry."""
    match = _REFERENCE.match(reference)
    if match is None:
        raise ValueError(
            f"model {reference!r}: expected NAME@ALIAS or NAME/VERSION, e.g. glasses-cnn@champion"
        )
    try:
        if match["alias"]:
            return tracking.get_model_version_by_alias(match["name"], match["alias"])
        return tracking.get_model_version(match["name"], match["version"])
    except MlflowException as error:
        raise ModelUnavailable(
            f"model {reference!r} is not in the registry at {tracking.tracking_uri} "
            f"({error.message}); run the flow first, or check MLFLOW_TRACKING_URI"
        ) from None


def logged_model_id(version: ModelVersion) -> str | None:
    """The MLflow 3 logged model behind a registry version (SQLite stores leave `model_id`
    empty; the source then reads `models:/<model id>`)."""
    if version.model_id:
        return version.model_id
    source = version.source or ""
    return source.removeprefix("models:/") if source.startswith("models:/m-") else None


def load_registered_model(reference: str) -> nn.Module:
    """The registered model as an `nn.Module` on the CPU: the one loader of the project.

    Reads only the JSON description and the weights with torch's `weights_only` loader and
    rebuilds the network from this package's classes: nothing from the registry is unpickled
    or executed, so a model registered by someone else cannot run code here.
    """
    tracking = client()
    version = model_version(tracking, reference)
    source = tracking.get_model_version_download_uri(version.name, version.version)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            spec_file = mlflow.artifacts.download_artifacts(
                f"{source.rstrip('/')}/artifacts/spec.json",
                dst_path=scratch,
                tracking_uri=tracking.tracking_uri,
            )
            weights_file = mlflow.artifacts.download_artifacts(
                f"{source.rstrip('/')}/artifacts/weights.pt",
                dst_path=scratch,
                tracking_uri=tracking.tracking_uri,
            )
        except (MlflowException, OSError) as error:
            raise ModelUnavailable(
                f"{version.name} v{version.version} has no spec.json/weights.pt: it was logged by "
                "an older glasses as a pickled module, which is not unpickled; register a new "
                f"version by running the flow ({error.__class__.__name__})"
            ) from None
        spec = json.loads(Path(spec_file).read_text())
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
    return build_from_spec(spec, state)


@lru_cache(maxsize=4)
def version_model(family: Family, version: str) -> nn.Module:
    """A registered version of `family`, loaded once per process: a version never changes, and
    the tasks that read it (explanations, figures) may run many times in one worker. Callers
    must not modify it (the randomisation check works on a copy)."""
    return load_registered_model(f"{SPECS[family].registered_name}/{version}")


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
    run_id: str  # the family run it was logged into
    version: str
    scores: dict[str, float]
    champion_version: str
    decision: str

    @property
    def accuracy(self) -> float:
        return self.scores["accuracy"]


@task(name="evaluate-on-test", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def evaluate_on_test(
    family: Family,
    version: str,
    data: DataRef,
    test_rows: np.ndarray,
    run_id: str,
    lineage: Lineage,
    margin: float = 0.0,
) -> HeldOutResult:
    """Score the registered version, loaded from the registry (not memory), on the test split.

    The new version records its `lineage` and takes the `challenger` alias; `champion` moves to
    it only when the current champion can be compared on this test split (same input size, none
    of these test images in its training data) and the new version beats it, re-scored on the
    same test data, by `margin` (`glasses.promotion`).
    """
    tracking = client()
    images = image_set(data)
    pixels = torch.from_numpy(images.pixels[test_rows])
    labels = images.labels[test_rows]
    test_sha256 = images.manifest["sha256"].astype(str).to_numpy()[test_rows].tolist()
    name = SPECS[family].registered_name
    record_lineage(tracking, name, version, lineage)
    model = load_registered_model(f"{name}/{version}")
    result, matrix = held_out_scores(model, pixels, labels)
    model_id = logged_model_id(tracking.get_model_version(name, version))
    log_metrics(tracking, run_id, {f"holdout_{k}": v for k, v in result.items()}, model_id=model_id)
    title = f"{name} v{version}: held-out accuracy {result['accuracy']:.3f}"
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
    return HeldOutResult(run_id, version, result, champion, decision)


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
    """`glasses.promotion.decide_champion` with what it asks for read from the registry: the
    current champion, its lineage, and its scores on this very test split."""
    try:
        current = str(tracking.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        current = None

    def champion_scores() -> dict[str, float] | str:
        try:
            return held_out_scores(load_registered_model(f"{name}/{current}"), pixels, labels)[0]
        except ModelUnavailable as error:
            return str(error)

    return decide_champion(
        version,
        result,
        current,
        lambda: read_lineage(tracking, name, current),
        champion_scores,
        pixels.shape[-1],
        test_sha256,
        margin,
    )


@task(name="refit-lineage", cache_policy=NO_CACHE)
def refit_lineage(data: DataRef, train_rows: np.ndarray, config: GlassesConfig) -> Lineage:
    """What the refit on `train_rows` was trained on, recorded with its registered version."""
    return training_lineage(image_set(data).manifest, train_rows, config.data.image_size)
