"""`make benchmark`'s report: the cost table's columns are the ratios the issue asks for."""

from __future__ import annotations

import pytest

from benchmarks.run import cost_table
from benchmarks.training_cost import Cost


def test_cost_table_has_one_row_per_family_with_both_ratios() -> None:
    costs = [
        Cost("cnn", gflop_per_image=2.0, floor_ms=5.0, project_ms=6.0, plain_loop_ms=9.0),
        Cost("scatnet", gflop_per_image=1.0, floor_ms=2.5, project_ms=5.0, plain_loop_ms=5.5),
    ]
    table = cost_table(costs)
    assert table.index.tolist() == ["cnn", "scatnet"]
    assert table["project / floor (goal <= 1.3)"].tolist() == pytest.approx([1.2, 2.0])
    assert table["plain loop / project (goal >= 1.5, CNN)"].tolist() == pytest.approx([1.5, 1.1])
