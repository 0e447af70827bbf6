"""Model Registry I/O: register each family's model as a servable MLflow model, with the
lineage of what it was trained on. Loading a version is `tasks.model_loading`'s; testing it and
moving `champion`, `tasks.promotion`'s."""

from __future__ import annotations

import base64
import io
import json
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from PIL import Image
from prefect import task
from prefect.cache_policies import NO_CACHE

import glasses
import mlflow
from glasses.config import GlassesConfig
from glasses.data.reference import DataRef, image_set
from glasses.families import SPECS
from glasses.inference import SPEC, WEIGHTS, model_spec, prediction_table, probabilities
from glasses.labels import CLASS_NAMES
from glasses.promotion import Lineage, training_lineage
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


@task(name="refit-lineage", cache_policy=NO_CACHE)
def refit_lineage(data: DataRef, train_rows: np.ndarray, config: GlassesConfig) -> Lineage:
    """What the refit on `train_rows` was trained on, recorded with its registered version."""
    return training_lineage(image_set(data).manifest, train_rows, config.data.image_size)
