"""The `glasses` command: overrides parsing and clear, early errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from flows.cli import main, parse_overrides

BIN = Path(sys.executable).parent  # the venv that runs the tests


def test_overrides_nest_dotted_keys_and_read_values_as_yaml():
    tree = parse_overrides(
        ["cnn.optimiser.steps=3", "cnn.optimiser.lr=0.1", "data.max_images=null"]
    )
    assert tree == {"cnn": {"optimiser": {"steps": 3, "lr": 0.1}}, "data": {"max_images": None}}


def test_override_without_equals_sign_is_refused():
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["cnn.optimiser.steps"])


def test_unknown_profile_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--profile", "huge"])
    assert "invalid choice" in capsys.readouterr().err


def test_prefect_server_down_stops_before_any_work(monkeypatch, capsys, closed_port):
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{closed_port}/api")
    assert main(["run", "--profile", "tiny"]) == 1
    error = capsys.readouterr().err
    assert "Prefect server" in error and "not reachable" in error and "make up" in error


def test_unknown_override_key_is_named(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--profile", "tiny", "--set", "cnn.optimizer.steps=3"]) == 1
    assert "optimizer" in capsys.readouterr().err


def test_explain_writes_an_overlay_for_a_registered_model(
    mlflow_local, tmp_path, capsys, references
):
    import numpy as np
    import torch
    from PIL import Image

    from glasses.config import resolve_config
    from glasses.models.cnn import CNN
    from tasks.registry import register_model

    torch.manual_seed(0)
    model = CNN(resolve_config("tiny").cnn, 32).eval()
    pixels = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8).numpy()
    from tasks.runs import start_run
    from tasks.tracking import client, experiment_id

    tracking = client()
    run_id = start_run(tracking, experiment_id(tracking), "cnn", None, {})
    data = references.data(pixels, np.array([0, 1]))
    version = register_model.fn(references.model(model), data, np.arange(2), run_id)
    face = tmp_path / "face.png"
    Image.fromarray(np.full((48, 40), 128, dtype=np.uint8)).save(face)  # gray, other size
    output = tmp_path / "overlay.png"
    code = main(
        [
            "explain",
            str(face),
            "--model",
            f"glasses-cnn/{version}",
            "--method",
            "ig",
            "--output",
            str(output),
        ]
    )
    assert code == 0
    with Image.open(output) as written:
        assert written.width > 100 and written.height > 50
    assert str(output) in capsys.readouterr().out


def test_a_failing_run_shows_its_error_once_without_tracebacks(
    tmp_path, mlflow_local, prefect_home
):
    """Prefect's task and flow tracebacks stay off the console; `glasses:` says it once. Run as
    a user runs it, in a process of its own, so no other test's logging set-up interferes."""
    (tmp_path / "labels.csv").write_text("path,label\nface.png,1\n")
    Image.new("RGB", (32, 32)).save(tmp_path / "face.png")
    env = {**os.environ, "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    command = [BIN / "glasses", "run", "--profile", "tiny", "--data", str(tmp_path / "labels.csv")]
    finished = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    console = finished.stdout + finished.stderr
    assert finished.returncode == 1
    assert "Beginning flow run" in console  # Prefect's console log is there
    assert "Traceback" not in console
    assert console.count("independent unit") == 1
    assert "glasses: test split: only 1 independent unit" in finished.stderr


# Last in the module: `main` configures Prefect's console logging under capsys here.
@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("cnn.optimiser=3", "glasses: configuration: cnn.optimiser: Input should be a valid"),
        ("x=[3", "glasses: --set 'x=[3': the value is not valid YAML"),
        ("cnn.optimiser.steps=0", "glasses: configuration: cnn.optimiser.steps: Input should"),
        ("seed=1 seed.x=2", "glasses: --set 'seed.x=2': seed is set to a value above"),
    ],
)
def test_bad_overrides_are_one_clear_line(assignment, message, capsys):
    arguments = [part for value in assignment.split() for part in ("--set", value)]
    assert main(["config", "--profile", "tiny", *arguments]) == 1
    error = capsys.readouterr().err
    assert error.startswith(message) and error.count("\n") == 1  # no traceback


def test_config_prints_the_resolved_configuration(capsys):
    import yaml

    from glasses.config import resolve_config

    assert main(["config", "--profile", "quick", "--set", "seed=7"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == resolve_config("quick", {"seed": 7}).model_dump(mode="json")


def test_summary_of_a_running_run_shows_its_finished_stages_and_published_results(
    mlflow_local, capsys
):
    from tasks.log import log_metrics
    from tasks.runs import start_run
    from tasks.tracking import client, experiment_id

    tracking = client()
    run_id = start_run(tracking, experiment_id(tracking), "glasses-tiny", None, {"profile": "tiny"})
    log_metrics(tracking, run_id, {"stage_load_seconds": 65.0})
    log_metrics(tracking, run_id, {"stage_validate_seconds": 3.0})
    assert main(["summary"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == f"RUNNING run glasses-tiny ({run_id}): partial results"
    assert shown[1:] == ["  stage load: finished in 1m05s", "  stage validate: finished in 3s"]
    tracking.log_text(
        run_id, "# glasses: results\n\n**Partial: sweep still running.**", "summary.md"
    )
    tracking.set_terminated(run_id, "FAILED")
    assert main(["summary"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"FAILED run glasses-tiny ({run_id}): partial results")
    assert "**Partial: sweep still running.**" in shown
