"""The one inference path: what `glasses.inference` imports, and that its batched logits and
probabilities are each family's own forward pass."""

from __future__ import annotations

import os
import subprocess
import sys


def test_importing_inference_does_not_load_matplotlib() -> None:
    """Serving and `glasses predict` import it: a plotting library has no business there."""
    code = "import sys, glasses.inference; print('matplotlib' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # this checkout's glasses
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert answer.stdout.strip() == "False"
