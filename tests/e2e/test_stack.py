"""The local stack end to end: `prefect deployment run glasses/full` and the scheduled retrain
against real MLflow and Prefect servers, then `scripts/stack.sh` after SIGKILL of each service.

The stack is started by the same script as `make up`, on free loopback ports and in temporary
folders, so the tests exercise what users run; everything is checked over HTTP afterwards. One
stack serves the module: the kill test comes last, since it ends with `down`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
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
def stack(tmp_path_factory, _empty_mlflow_db, _empty_prefect_db):
    folder = tmp_path_factory.mktemp("stack")
    for template, store in ((_empty_mlflow_db, "mlflow"), (_empty_prefect_db, "prefect")):
        (folder / store).mkdir()  # new stores, without the seconds their migrations take
        shutil.copyfile(template, folder / store / template.name)
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
    started = stack_sh(env, "up")
    assert started.returncode == 0, started.stdout + started.stderr
    env.update(
        line.removeprefix("export ").split("=", 1)
        for line in stack_sh(env, "env").stdout.splitlines()
    )
    try:
        yield env
    finally:
        stack_sh(env, "down")


def stack_sh(env: dict[str, str], command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ROOT / "scripts/stack.sh", command], env=env, capture_output=True, text=True, timeout=400
    )


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


SERVICES = ("mlflow", "prefect", "serve")


def group_members(group: int) -> list[int]:
    """Running processes whose process group is `group` (what `pgrep -g` finds, less zombies:
    here PID 1 does not reap orphans, and a zombie holds neither a port nor memory)."""
    found = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split() if not zombie(int(pid))]


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True  # gone


def groups(folder: Path) -> dict[str, int]:
    return {name: int((folder / f"{name}.pid").read_text()) for name in SERVICES}


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_kill_9_each_service_then_up_status_down(stack) -> None:
    """Last in the module: `scripts/stack.sh` owns its process groups. Services killed with
    SIGKILL are cleaned up and restarted by `up`, `down` leaves no process behind, and a run
    with MLflow down says why."""
    folder = Path(stack["STACK_DIR"])
    first = groups(folder)
    seen = set(first.values())
    try:
        # Ports given to `up` are remembered for a shell that does not set them.
        fresh = {k: v for k, v in stack.items() if k not in ("MLFLOW_PORT", "PREFECT_PORT")}
        assert f"127.0.0.1:{stack['MLFLOW_PORT']}" in stack_sh(fresh, "env").stdout

        for name in SERVICES:  # only the leader: its workers stay behind, holding the port
            os.kill(first[name], signal.SIGKILL)
        time.sleep(1)
        assert group_members(first["mlflow"]), "precondition: MLflow's workers outlive it"
        assert "not answering" in stack_sh(stack, "status").stdout

        again = stack_sh(stack, "up")
        assert again.returncode == 0, again.stdout + again.stderr
        second = groups(folder)
        seen |= set(second.values())
        for name in SERVICES:
            assert second[name] != first[name]
            assert group_members(first[name]) == [], f"{name}: leftovers of the killed service"
        status = stack_sh(stack, "status").stdout
        assert status.count(": running") == 3, status

        # MLflow gone entirely: the deployment run fails, and --watch shows why.
        os.killpg(second["mlflow"], signal.SIGKILL)
        watched = subprocess.run(
            [BIN / "prefect", "deployment", "run", "glasses/full", "--watch",
             "--param", "profile=tiny", "--param", "data=synthetic"],
            env=stack, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        output = watched.stdout + watched.stderr
        assert watched.returncode != 0
        assert "MLflow tracking server" in output and "not reachable" in output, output[-3000:]
    finally:
        stopped = stack_sh(stack, "down")
    assert stopped.returncode == 0, stopped.stderr
    for group in seen:
        assert group_members(group) == [], f"process group {group} survived `down`"
