"""A `glasses run` whose cache disk fills up ends with one line naming the folder, its runs
marked FAILED and no temporary file left, instead of dying of SIGBUS with runs left RUNNING."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlflow import MlflowClient

BIN = Path(sys.executable).parent
# The tiny profile at 128 pixels: its synthetic PNGs (1.9 MB) and decoded pixels (2.9 MB) fit
# in 6 MB; its scattering coefficients (18.4 MB) do not.
DISK = "6m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "disk"
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a small tmpfs with")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.timeout(300)
def test_a_full_cache_disk_fails_the_run_with_one_line(
    small_disk, mlflow_local, prefect_home, tmp_path
) -> None:
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), "GLASSES_CACHE_DIR": str(small_disk)}
    env.pop("PREFECT_API_URL", None)
    command = [BIN / "glasses", "run", "--profile", "tiny", "--set", "data.image_size=128"]
    finished = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=280
    )
    assert finished.returncode == 1, finished.stderr[-2000:]
    last = finished.stderr.strip().splitlines()[-1]
    assert last.startswith(f"glasses: cache folder {small_disk}/scattering has "), last
    assert last.endswith("MB; free space or set GLASSES_CACHE_DIR"), last
    assert not [path for path in small_disk.rglob("*") if ".tmp" in path.name]

    tracking = MlflowClient(mlflow_local)
    runs = tracking.search_runs([tracking.get_experiment_by_name("glasses").experiment_id])
    (parent,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert parent.info.status == "FAILED"
    assert not [run.info.run_name for run in runs if run.info.status == "RUNNING"]
    with sqlite3.connect(prefect_home / "prefect.db") as prefect:
        states = {state for (state,) in prefect.execute("SELECT state_type FROM flow_run")}
    assert states == {"FAILED"}
