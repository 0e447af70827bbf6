"""A profile's training work per stage: trainings and images a reader can count by hand."""

from __future__ import annotations

import pytest

from benchmarks.work import gap_table, training_work, work_table
from glasses.config import resolve_config

GFLOP = {"cnn": 2.0, "scatnet": 1.0}
NO_EARLY_STOPPING = {f: {"optimiser": {"patience": 0}} for f in ("cnn", "scatnet")}


def by_stage(work, family: str) -> dict[str, tuple[int, int]]:
    return {w.stage: (w.trainings, w.images) for w in work if w.family == family}


def test_tiny_counts_folds_one_refit_and_every_sweep_point() -> None:
    """tiny: 2 folds, 2 outer splits, sizes (36, 20) x 2 repeats, 12 steps of 8 images; no early
    stopping."""
    config = resolve_config("tiny", NO_EARLY_STOPPING)
    work = training_work(config, n_train=48, gflop_per_image=GFLOP)
    per_training = 12 * 8
    for family in ("cnn", "scatnet"):
        assert by_stage(work, family) == {
            "cross_validation": (2, 2 * per_training),
            "refit": (1, per_training),
            "outer": (2, 2 * per_training),
            "sweep": (4, 4 * per_training),
        }
    cnn_sweep = next(w for w in work if w.family == "cnn" and w.stage == "sweep")
    assert cnn_sweep.gflop == pytest.approx(4 * per_training * 2.0)
    assert cnn_sweep.floor_seconds(gflops=8.0) == pytest.approx(cnn_sweep.gflop / 8.0)


def test_sweep_sizes_larger_than_the_split_and_early_stopping_change_the_count() -> None:
    """A size above the training split is dropped; with patience each point trains twice (the
    probe that picks the steps, then the refit on all its rows); a disabled sweep trains none."""
    config = resolve_config("tiny", {"scatnet": {"optimiser": {"patience": 0}}})
    assert by_stage(training_work(config, 30, GFLOP), "cnn")["sweep"][0] == 2 * 2
    assert by_stage(training_work(config, 30, GFLOP), "scatnet")["sweep"][0] == 2
    off = resolve_config("tiny", {"sweep": {"enabled": False}, **NO_EARLY_STOPPING})
    assert by_stage(training_work(off, 48, GFLOP), "cnn")["sweep"] == (0, 0)


def test_matched_sweep_trains_the_scatnet_with_the_cnns_optimiser() -> None:
    config = resolve_config(
        "tiny",
        {"sweep": {"matched": True}, "cnn": {"optimiser": {"steps": 30, "patience": 0}}},
    )
    sweep = by_stage(training_work(config, 48, GFLOP), "scatnet")["sweep"]
    assert sweep == (4, 4 * 30 * 8)


def test_work_table_adds_the_families_per_stage_and_sets_the_floor_beside_the_measurement() -> None:
    config = resolve_config("tiny", NO_EARLY_STOPPING)
    work = training_work(config, n_train=48, gflop_per_image={"cnn": 1e3, "scatnet": 1e3})
    table = work_table(work, {"cross_validation": 2 * 0.384, "sweep": 1.0}, gflops=1e3)
    assert table.index.tolist() == ["cross_validation", "refit", "outer", "sweep"]
    assert table["trainings"].tolist() == [4, 2, 4, 8]
    # cross-validation: 4 trainings x 96 images x 1 TFLOP = 384 TFLOP, 384 s at 1 TFLOP/s
    assert table.loc["cross_validation", "floor s"] == pytest.approx(384.0)
    assert table.loc["cross_validation", "measured / floor"] == pytest.approx(2 * 0.384 / 384)
    assert table.loc["refit", "measured s"] != table.loc["refit", "measured s"]  # not measured


def test_the_budget_check_adds_its_trainings_at_their_multiples_of_the_budget() -> None:
    """tiny with a budget check at 20 images: 2 draws at 0.5x and 2x of 12 steps each."""
    config = resolve_config(
        "tiny",
        {**NO_EARLY_STOPPING,
         "sweep": {"budget_factors": (0.5, 2.0), "budget_sizes": (20,), "budget_repeats": 2}},
    )  # fmt: skip
    trainings, images = by_stage(training_work(config, 48, GFLOP), "cnn")["sweep"]
    assert trainings == 4 + 2 * 2
    assert images == (4 * 12 + 2 * 6 + 2 * 24) * 8


def test_the_gap_is_three_factors_whose_product_is_measured_over_floor() -> None:
    """tiny cross-validation: 2 trainings of 12 steps of 8 images per family, 384 GFLOP at 384
    GFLOP/s, so 1 s of floor. At 10 ms (CNN) and 5 ms (ScatNet) a step alone, on 2 cores: 0.18 s
    of steps (0.18x the floor). Measured 0.5 s with 1.5 cores busy: 0.75 s of CPU, 2.08x the
    0.36 s of steps alone, and 2 / 1.5 = 1.33x for the core that waited."""
    config = resolve_config("tiny", NO_EARLY_STOPPING)
    work = training_work(config, n_train=48, gflop_per_image={"cnn": 1.0, "scatnet": 1.0})
    table = work_table(work, {"cross_validation": 0.5}, gflops=384.0)
    gaps = gap_table(table, work, {"cross_validation": 1.5}, {"cnn": 10.0, "scatnet": 5.0}, cores=2)
    row = gaps.loc["cross_validation"]
    assert row["floor s"] == pytest.approx(1.0)
    assert row["steps alone s"] == pytest.approx(0.18)
    assert row["step / floor"] == pytest.approx(0.18)
    assert row["CPU s"] == pytest.approx(0.75)
    assert row["CPU / steps alone"] == pytest.approx(0.75 / 0.36)
    assert row["cores / cores busy"] == pytest.approx(2 / 1.5)
    product = row["step / floor"] * row["CPU / steps alone"] * row["cores / cores busy"]
    assert product == pytest.approx(row["measured / floor"]) == pytest.approx(0.5)
    assert gaps.loc["refit"].isna()[["CPU s", "cores busy"]].all()  # not measured
