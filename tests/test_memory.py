"""Peak resident memory: it sees an allocation, and a reset forgets it."""

from __future__ import annotations

import numpy as np
import pytest

from glasses.memory import peak_rss_mb, reset_peak


def test_peak_sees_a_large_allocation_and_a_reset_forgets_it() -> None:
    if not reset_peak():
        pytest.skip("this kernel cannot reset the peak")
    baseline = peak_rss_mb()
    block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
    assert peak_rss_mb() >= baseline + 250
    del block
    reset_peak()
    assert peak_rss_mb() < baseline + 150
