"""`prefect deployment run glasses/full` against real MLflow and Prefect servers.

The stack is started by the same script as `make up`, on free loopback ports and in temporary
folders, so the test exercises what users run; everything is checked over HTTP afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from glasses.data.synthetic import generate_synthetic
from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stack")
    env = {
        **os.environ,
        "MLFLOW_PORT": str(free_port()),
        "PREFECT_PORT": str(free_port()),
        "STACK_DIR": str(folder / "stack"),
        "PREFECT_HOME": str(folder / "prefect"),
        "MLFLOW_STORE_DIR": str(folder / "mlflow"),
        "GLASSES_CACHE_DIR": str(folder / "cache"),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PREFECT_API_URL", None)
    subprocess.run([ROOT / "scripts/stack.sh", "up"], env=env, check=True, timeout=400)
    lines = subprocess.run(
        [ROOT / "scripts/stack.sh", "env"], env=env, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    env.update(line.removeprefix("export ").split("=", 1) for line in lines)
    try:
        yield env
    finally:
        subprocess.run([ROOT / "scripts/stack.sh", "down"], env=env, timeout=120)


def run_deployment(stack: dict[str, str], name: str, *params: str) -> subprocess.CompletedProcess:
    """`prefect deployment run NAME --param … --watch`, as a user types it; must succeed."""
    command = [BIN / "prefect", "deployment", "run", name, "--watch"]
    for param in params:
        command += ["--param", param]
    run = subprocess.run(command, env=stack, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.e2e
def test_deployment_run_logs_everything(stack, tmp_path):
    run = run_deployment(stack, "glasses/full", "profile=tiny", "data=synthetic")
    assert "Completed" in run.stdout
    # `--watch` follows the parent flow run: the study sub-flow's progress reaches it.
    for line in ("stage cross_validation: started", "train-fold: 3/3 done", "cnn-refit step"):
        assert line in run.stdout, run.stdout[-3000:]

    client = MlflowClient(stack["MLFLOW_TRACKING_URI"], registry_uri=stack["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("glasses")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "profile" in r.data.tags)
    assert parent.info.status == "FINISHED"
    for tag in ("prefect_flow_run_id", "git_commit", "data_fingerprint"):
        assert parent.data.tags[tag]
    assert parent.data.params["cnn.optimiser.steps"] == "12"
    assert any(k.startswith("stage_") for k in parent.data.metrics)
    parent_artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"data", "validation", "figures", "summary.md"} <= parent_artifacts
    assert parent.inputs.dataset_inputs, "dataset not logged with log_input"

    children = {r.data.tags.get("mlflow.runName"): r for r in runs}
    for family, name in (("cnn", "glasses-cnn"), ("scatnet", "glasses-scatnet")):
        family_run = children[family]
        assert family_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        expected = {"cv_accuracy_mean", "test_accuracy", "test_accuracy_low", "holdout_f1"}
        assert expected <= set(family_run.data.metrics)
        files = {a.path for a in client.list_artifacts(family_run.info.run_id)}
        assert {f"{family}_folds.csv", f"{family}_folds.md"} <= files
        figures = {a.path for a in client.list_artifacts(family_run.info.run_id, "figures")}
        assert f"figures/{family}_fold_accuracy.png" in figures
        assert f"figures/{family}_confusion_test.png" in figures
        folds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == family_run.info.run_id]
        assert len(folds) == 2
        history = client.get_metric_history(folds[0].info.run_id, "train_loss")
        steps = sorted(m.step for m in history)
        assert steps and steps[0] == 4 and all(s % 4 == 0 for s in steps)  # one per check
        champion = client.get_model_version_by_alias(name, "champion")
        assert champion.run_id == family_run.info.run_id
        assert champion.aliases == ["champion"]  # a first version: champion only
        assert "Held-out balanced accuracy" in champion.description

    sweep = children["sweep"]
    assert sweep.data.tags["sweep_verdict"]
    assert "sweep" in {a.path for a in client.list_artifacts(sweep.info.run_id)}

    explained = children["xai"]
    assert explained.data.tags["mlflow.parentRunId"] == parent.info.run_id
    tables = {a.path for a in client.list_artifacts(explained.info.run_id, "tables")}
    assert {"tables/checks.csv", "tables/agreement.csv", "tables/randomisation.csv"} <= tables
    assert explained.data.metrics["cnn_ig_vs_captum_pearson"] > 0.999
    overlays = {a.path for a in client.list_artifacts(explained.info.run_id, "figures")}
    assert "figures/scatnet_sunglasses_overlays.png" in overlays
    believe = pd.read_csv(
        client.download_artifacts(explained.info.run_id, "tables/checks.csv", str(tmp_path))
    )
    assert set(believe["model"]) == {"cnn", "scatnet"}
    masses = believe[believe["check"] == "relevance mass"]
    assert masses["n"].min() >= 1, "synthetic glasses masks were not used"

    flow_runs = httpx.post(f"{stack['PREFECT_API_URL']}/artifacts/filter", json={}).json()
    assert {"glasses-results", "glasses-sweep", "glasses-xai"} <= {a["key"] for a in flow_runs}


@pytest.mark.e2e
def test_scheduled_retrain_on_a_drifted_batch(stack, tmp_path, newest_version):
    """Runs after the full deployment above (same servers): champions exist to compare with."""
    inspect = subprocess.run(
        [BIN / "prefect", "deployment", "inspect", "glasses-retrain/scheduled"],
        env=stack,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert inspect.returncode == 0, inspect.stderr
    assert "0 3 * * *" in inspect.stdout and "'paused': True" in inspect.stdout

    incoming = tmp_path / "incoming"
    source = generate_synthetic(tmp_path / "gen", 40, 22, 32, seed=11)
    for path, label in pd.read_csv(source)[["path", "label"]].itertuples(index=False):
        target = incoming / ("glasses" if label else "no_glasses") / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        dark = np.asarray(Image.open(source.parent / path), dtype=np.float32) * 0.4
        Image.fromarray(dark.astype(np.uint8)).save(target)
    run_deployment(
        stack,
        "glasses-retrain/scheduled",
        "profile=tiny",
        f"incoming={incoming}",
        f"store={tmp_path / 'datasets'}",
        f"quarantine={tmp_path / 'quarantine'}",
    )

    client = MlflowClient(stack["MLFLOW_TRACKING_URI"], registry_uri=stack["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("glasses")
    retrain_run = client.search_runs(
        [experiment.experiment_id], filter_string="tags.flow = 'retrain'"
    )[0]
    tags = retrain_run.data.tags
    assert tags["decision"] in {"promoted", "kept"}
    assert tags["drift"] == "drifted"
    head = (tmp_path / "datasets/versions/HEAD").read_text().strip()
    assert tags["dataset_version"] == head
    # The re-run's version holds one alias: `champion` when it was promoted, else `challenger`.
    newest = newest_version(client, "glasses-scatnet")
    assert newest.tags["dataset_version"] == head
    alias = "champion" if tags["decision"] == "promoted" else "challenger"
    assert newest.aliases == [alias]
    drift = {a.path for a in client.list_artifacts(retrain_run.info.run_id, "drift")}
    assert "drift/evidently_report.html" in drift
