"""The flow part of the benchmark: stage metrics, overhead share, the table and the store."""

from __future__ import annotations

import os

import pytest

from benchmarks.stages import (
    FlowTiming,
    overhead_share,
    peak_memory_table,
    scaled_table,
    scratch_store,
    stage_metric,
    stage_table,
)


def test_overhead_is_the_share_outside_every_stage() -> None:
    assert overhead_share(100.0, [60.0, 30.0]) == pytest.approx(0.10)
    timing = FlowTiming({"load": 45.0, "xai": 45.0}, 120.0, 960, {})
    assert timing.overhead_share == pytest.approx(0.25)


def test_overhead_needs_a_wall_time() -> None:
    with pytest.raises(ValueError, match="positive"):
        overhead_share(0.0, [])


def test_stage_metrics_by_suffix_leave_out_the_others() -> None:
    metrics = {
        "stage_load_seconds": 9.0,
        "stage_load_peak_rss_mb": 1217.0,
        "stage_cross_validation_seconds": 54.0,
        "scattering_seconds": 8.0,
    }
    assert stage_metric(metrics, "seconds") == {"load": 9.0, "cross_validation": 54.0}
    assert stage_metric(metrics, "peak_rss_mb") == {"load": 1217.0}


def test_stage_table_sums_and_shares() -> None:
    cold = FlowTiming({"load": 10.0, "xai": 80.0}, 100.0, 960, {"load": 900.0, "xai": 3000.0})
    warm = FlowTiming({"load": 2.0, "xai": 78.0}, 88.0, 960, {"load": 800.0, "xai": 3100.0})
    table = stage_table({"cold": cold, "warm": warm})
    assert table.columns.tolist() == ["cold", "warm"]
    assert table.loc["sum of stages"].tolist() == [90.0, 80.0]
    assert table.loc["flow wall (incl. Prefect start)"].tolist() == [100.0, 88.0]
    assert table.loc["overhead (wall - stages), %"].tolist() == pytest.approx([10.0, 100 * 8 / 88])
    memory = peak_memory_table({"cold": cold, "warm": warm})
    assert memory.loc["xai"].tolist() == [3000.0, 3100.0]


def test_scaled_table_takes_the_cold_run_to_the_reference_floor() -> None:
    cold = FlowTiming({"load": 10.0, "xai": 80.0}, 300.0, 960, {})
    table = scaled_table(cold, gflops=229.0)  # half the reference
    assert table.index.tolist() == ["flow wall (incl. Prefect start)", "xai"]
    assert table.iloc[:, 0].tolist() == [300.0, 80.0]
    assert table.iloc[:, 1].tolist() == pytest.approx([150.0, 40.0])
    assert table["goal s (scaled)"].tolist() == [180.0, 40.0]


def test_scratch_store_gives_the_environment_back(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team-server:5000")
    monkeypatch.delenv("GLASSES_CACHE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with scratch_store(None):
        assert os.environ["MLFLOW_TRACKING_URI"].startswith("sqlite:///")
        assert "GLASSES_CACHE_DIR" in os.environ
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://team-server:5000"
    assert "GLASSES_CACHE_DIR" not in os.environ
    assert os.getcwd() == str(tmp_path)
