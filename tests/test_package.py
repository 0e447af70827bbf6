"""The library's public names: every module listed, and importing the package loads no torch;
the Prefect packages' names: a user's module that hides one is named in one line."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import glasses
import glasses.data


@pytest.mark.parametrize("package", [glasses, glasses.data])
def test_all_lists_every_module(package) -> None:
    modules = {module.name for module in pkgutil.iter_modules(package.__path__)}
    assert sorted(package.__all__) == sorted(modules)


def test_importing_the_package_loads_neither_torch_nor_the_orchestration() -> None:
    heavy = "{'torch', 'prefect', 'mlflow'}"
    code = f"import sys, glasses, glasses.data; print(sorted({heavy} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


def test_a_users_tasks_module_that_hides_ours_is_named(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("")
    imported = subprocess.run(
        [sys.executable, "-c", "import flows"], cwd=tmp_path, capture_output=True, text=True
    )
    assert imported.returncode == 1
    last = imported.stderr.strip().splitlines()[-1]
    assert f"the module 'tasks' at {tmp_path / 'tasks.py'} hides glasses' package tasks" in last


def test_our_own_packages_pass(tmp_path: Path) -> None:
    imported = subprocess.run(
        [sys.executable, "-c", "import flows, tasks; print(tasks.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stderr
