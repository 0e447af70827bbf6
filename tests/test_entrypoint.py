"""Entry points' process settings: passive OpenMP waiting and no telemetry, unless the user says
otherwise."""

from __future__ import annotations

import os

from glasses.entrypoint import PROCESS_DEFAULTS, prepare_process


def test_defaults_are_set_and_user_values_win(monkeypatch) -> None:
    for name in PROCESS_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    prepare_process()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "true"
