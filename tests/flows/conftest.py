"""Flows called in-process talk to one Prefect test server for the whole session.

Without it each call starts (and at interpreter exit stops) a temporary server of its own.
"""

from __future__ import annotations

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    with prefect_test_harness(server_startup_timeout=180):
        yield
