"""The scheduled re-run in-process, with the tiny profile: every decision it can take."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from flows.retrain import retrain
from glasses.data.synthetic import generate_synthetic
from mlflow import MlflowClient


@pytest.fixture
def workplace(tmp_path, mlflow_local):
    (tmp_path / "incoming").mkdir()
    return tmp_path


def drop_batch(folder: Path, seed: int, darken: float = 1.0, prefix: str = "") -> list[Path]:
    """An ImageFolder batch drawn from the synthetic generator, optionally much darker."""
    source = generate_synthetic(folder.parent / f"gen{seed}", 40, 22, 32, seed)
    table = pd.read_csv(source)
    written = []
    for path, label in zip(table["path"], table["label"], strict=True):
        target = folder / ("glasses" if label else "no_glasses") / f"{prefix}{Path(path).name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.asarray(Image.open(source.parent / path), dtype=np.float32) * darken
        Image.fromarray(pixels.astype(np.uint8)).save(target)
        written.append(target)
    return written


def run(**kwargs):
    return retrain(incoming="incoming", profile="tiny", **kwargs)


def test_decisions_over_successive_batches(workplace, newest_version):
    # Explicit registry too: earlier tests in the process may have set a global registry URI.
    uri = f"sqlite:///{workplace}/mlflow.db"
    tracking = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert run()["decision"] == "no data"
    first = (workplace / "datasets/versions/HEAD").read_text().strip()

    drop_batch(workplace / "incoming", seed=9, prefix="same-")
    quiet = run(overrides={"retrain": {"min_new_share": 5.0}})
    assert quiet["decision"] == "no drift", quiet
    head = (workplace / "datasets/versions/HEAD").read_text().strip()
    assert head != first, "an accepted batch is a new dataset version even without retraining"

    batch = drop_batch(workplace / "incoming", seed=7, darken=0.4)
    result = run()
    assert result["decision"] in {"promoted", "kept"}, result
    tags = tracking.get_run(result["mlflow_run_id"]).data.tags
    assert tags["drift"] == "drifted"
    new_head = (workplace / "datasets/versions/HEAD").read_text().strip()
    assert new_head != head and tags["dataset_version"] == new_head
    artifacts = {a.path for a in tracking.list_artifacts(result["mlflow_run_id"], "drift")}
    assert "drift/evidently_report.html" in artifacts
    newest = newest_version(tracking, "glasses-cnn")  # one alias: champion when promoted
    assert newest.tags["dataset_version"] == new_head
    assert newest.aliases == ["champion" if result["decision"] == "promoted" else "challenger"]

    assert run()["decision"] == "no data"  # content already imported

    for path in batch[:5]:  # the same images again under new names: still nothing new
        shutil.copy(path, path.with_name("copy-" + path.name))
    assert run()["decision"] == "no data"
    assert all(path.exists() for path in batch), "accepted input must stay where it was"

    bad = workplace / "incoming/glasses/broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    rejected = run()
    assert rejected["decision"] == "rejected"
    assert "broken.png" in rejected["detail"]
    assert (workplace / "datasets/versions/HEAD").read_text().strip() == new_head
    quarantined = list((workplace / "quarantine").rglob("broken.png"))
    assert len(quarantined) == 1 and not bad.exists()
    assert list((workplace / "quarantine").rglob("validation.html"))
