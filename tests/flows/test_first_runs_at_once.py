"""Two first runs at once on a new MLflow store and a new Prefect home: one process at a time
creates each database (`tasks.tracking`, `flows.temporary_server`), so both finish and the
store stays usable. Before the locks, two such runs broke the store for good (`table
_alembic_tmp_… already exists`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

BIN = Path(sys.executable).parent
# The least work that still runs every stage that touches a store.
SMALL = {
    "cnn.optimiser.steps": 4,
    "scatnet.optimiser.steps": 4,
    "sweep.enabled": "false",
    "xai.enabled": "false",
}


def test_two_first_runs_at_once_both_finish(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "GLASSES_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("PREFECT_API_URL", None)
    settings = [part for key, value in SMALL.items() for part in ("--set", f"{key}={value}")]
    command = [BIN / "glasses", "run", "--profile", "tiny", *settings]
    runs = [
        subprocess.Popen(
            command,
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)  # as few as broke the store before the locks
    ]
    outcomes = [(run.wait(timeout=600), run.stderr.read()) for run in runs]
    for code, stderr in outcomes:
        assert code == 0, stderr[-2000:]
        assert "Traceback" not in stderr

    store = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = store.get_experiment_by_name("glasses")
    parents = store.search_runs([experiment.experiment_id], "tags.profile = 'tiny'", max_results=10)
    assert [run.info.status for run in parents] == ["FINISHED"] * 2
    summary = subprocess.run(
        [BIN / "glasses", "summary"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert summary.returncode == 0, summary.stderr
