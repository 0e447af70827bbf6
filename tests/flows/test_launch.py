"""The container stack's Prefect and Dask processes start set up like every glasses entry point:
`python -m flows.launch COMMAND …` (docker/compose.yaml)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from flows import launch
from flows.concurrency import dask_settings
from glasses.entrypoint import ALLOCATOR, PROCESS_DEFAULTS

DOCKER = Path(__file__).parents[2] / "docker"
LAUNCH = ["python", "-m", "flows.launch"]


class _ComposeLoader(yaml.SafeLoader):
    """Compose's YAML: `!reset` empties an inherited value."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: None)


def _commands(compose: str) -> dict[str, list[str]]:
    services = yaml.load((DOCKER / compose).read_text(), Loader=_ComposeLoader)["services"]
    return {name: service["command"] for name, service in services.items() if "command" in service}


@pytest.mark.parametrize("compose", ["compose.yaml", "compose.host.yaml"])
def test_the_stack_s_prefect_and_dask_processes_are_launched_set_up(compose) -> None:
    commands = _commands(compose)
    for name in ("prefect", "dask-scheduler", "dask-worker-1", "dask-worker-2"):
        if name in commands:
            assert commands[name][:3] == LAUNCH, (name, commands[name])
    if "prefect-worker" in commands:
        shell = commands["prefect-worker"][-1]
        assert "exec python -m flows.launch prefect worker start" in shell


def test_dask_settings_give_the_workers_the_allocator_of_every_glasses_process() -> None:
    settings = dask_settings()
    spawned = {
        key.rpartition(".")[2]: value
        for key, value in settings.items()
        if key.startswith("distributed.nanny.pre-spawn-environ.")
    }
    assert spawned == {name: str(value) for name, value in ALLOCATOR.items()}
    assert settings["distributed.comm.timeouts.tcp"] == "600s"  # and dask.yaml's limits


def _fresh(code: list[str]) -> str:
    """stdout of `python ARGS` in a fresh process without the set-up's values."""
    env = {name: value for name, value in os.environ.items() if name not in PROCESS_DEFAULTS}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)  # this checkout
    return subprocess.run(
        [sys.executable, *code], env=env, capture_output=True, text=True, timeout=300, check=True
    ).stdout


def test_the_launcher_sets_up_its_process_first() -> None:
    names = sorted(PROCESS_DEFAULTS)
    code = f"import os, flows.launch; print([os.environ.get(n) for n in {names!r}])"
    assert _fresh(["-c", code]).strip() == str([PROCESS_DEFAULTS[n] for n in names])


def test_the_command_runs_in_this_process_with_its_arguments(monkeypatch) -> None:
    seen = {}

    def script() -> int:
        seen["argv"] = list(sys.argv)
        return 0

    entry = SimpleNamespace(load=lambda: script)
    monkeypatch.setattr(launch, "entry_points", lambda **_: (entry,))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    with pytest.raises(SystemExit) as exit_code:
        launch.main(["prefect", "worker", "start", "--pool", "glasses"])
    assert exit_code.value.code == 0
    assert seen["argv"] == ["prefect", "worker", "start", "--pool", "glasses"]


def test_dask_commands_take_the_project_s_dask_settings() -> None:
    """A real `dask` command: its nannies would start workers with the glasses allocator."""
    key = "distributed.nanny.pre-spawn-environ"
    shown = _fresh(["-m", "flows.launch", "dask", "config", "get", key])
    for name, value in ALLOCATOR.items():
        assert f"{name}: '{value}'" in shown, shown


def test_an_unknown_command_says_how_to_call_it() -> None:
    with pytest.raises(SystemExit, match="no console command 'nonesuch'.*usage"):
        launch.main(["nonesuch"])
