"""`scripts/fault_probe.py` keeps working: its two quickest cases (refused before any server
starts) through its own functions, and the checks that judge every case. The whole probe takes
about 25 minutes: run it by hand (`python scripts/fault_probe.py`)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("fault_probe", ROOT / "scripts/fault_probe.py")
fault_probe = sys.modules["fault_probe"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fault_probe)  # scripts/ is no package: loaded from its file
CASES = {case.name: case for case in fault_probe.CASES}


# A bad profile stops in argparse (no store); a bad key once the MLflow store exists (seconds).
@pytest.mark.parametrize("name", ["unknown-profile", "unknown-key"])
def test_quick_refusals_are_one_line_and_leave_everything_as_it_was(name, tmp_path) -> None:
    outcome = fault_probe.probe(CASES[name], tmp_path / name)
    assert outcome.as_expected, outcome
    assert not outcome.traceback and outcome.running == 0 and outcome.changed == []
    assert outcome.last_line.startswith("glasses")
    assert fault_probe.passed([outcome])


def test_a_touched_input_a_traceback_or_a_wrong_exit_fails_the_probe(tmp_path) -> None:
    state, changed = fault_probe.input_state, fault_probe.changed_entries
    (tmp_path / "a.png").write_bytes(b"one")
    (tmp_path / "link.png").symlink_to(tmp_path / "a.png")
    before = state(tmp_path)
    (tmp_path / "a.png").write_bytes(b"two")
    (tmp_path / "b.png").write_bytes(b"new")
    (tmp_path / "link.png").unlink()
    (tmp_path / "link.png").symlink_to(tmp_path / "b.png")
    assert changed(before, state(tmp_path)) == ["a.png", "b.png", "link.png"]
    before = state(tmp_path)
    os.utime(tmp_path / "a.png", ns=(0, 0))  # same bytes, another mtime
    assert changed(before, state(tmp_path)) == ["a.png"]

    fine = fault_probe.Outcome("x", 1, 1, False, 0, [], 1.0, "glasses: no", True)
    assert fault_probe.passed([fine])
    for spoilt in (
        {"traceback": True},
        {"running": 1},
        {"changed": ["a.png"]},
        {"code": 0, "as_expected": False},
    ):
        assert not fault_probe.passed([fine, dataclasses.replace(fine, **spoilt)])
    assert fault_probe.summary([fine, fine]) == (
        "2 cases: 0 raw tracebacks, 0 stuck RUNNING runs, 0 input files changed"
    )
