"""The library's public names: every module listed, and importing the package loads no torch."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

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
