"""The container image (docker/) takes the CPU build of torch unless asked for CUDA, and with it
no torchvision: PyPI's is built for CUDA and cannot be imported beside the CPU build."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]
DOCKER = ROOT / "docker"


def test_the_image_takes_the_cpu_build_of_torch_unless_asked() -> None:
    assert re.search(r"^ARG TORCH_FLAVOUR=cpu$", (DOCKER / "Dockerfile").read_text(), re.M)
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert compose["x-app"]["build"]["args"]["TORCH_FLAVOUR"] == "${TORCH_FLAVOUR:-cpu}"


def test_no_module_imports_torchvision() -> None:
    imports = set()
    for folder in ("src", "tasks", "flows", "deployments"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                imports.update(f"{path.relative_to(ROOT)}: {n}" for n in names)
    assert not [i for i in imports if re.search(r": torchvision(\.|$)", i)]
