"""One answer whatever the seed: `tiny` twice on a fixed real data set, seeds 1 and 2.

What must agree: the sweep's verdict class (who wins anywhere, or nobody), and every interval the
run reports (each family's test balanced accuracy, ScatNet − CNN per sweep size) must contain the
other seed's point estimate: the intervals claim to cover what changes with the seed. The runs
use four repetitions of the outer 2-fold and eight sweep draws, one per split: with tiny's own
two of each the bootstrap's top level has two units, too few for an interval to mean much, and
no verdict but "none" could be reached (the sign-flip floor of two splits is 0.5); with eight,
Holm over the two sizes can reject, so the verdict classes could differ. Even exact 95 %
intervals contain an independent second estimate only about 83 % of the time (1.96 / √2 standard
errors), so this is a check on two fixed seeds, not a coverage study: the null simulation
(tests/test_null_simulation.py) is that.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flows.full import glasses
from mlflow import MlflowClient

OLIVETTI = Path(__file__).resolve().parents[2].parent / "shared/data/olivetti_glasses/labels.csv"


def study(tracking: MlflowClient, seed: int, folder: Path) -> dict:
    result = glasses(
        data=str(OLIVETTI),
        profile="tiny",
        overrides={
            "seed": seed,
            "data": {"max_images": 200},
            "split": {"outer": 4},
            "sweep": {"repeats": 8},
            "xai": {"enabled": False},
        },
    )
    run = tracking.get_run(result["mlflow_run_id"])
    folder.mkdir()
    children = {
        child.info.run_name: child
        for child in tracking.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
        )
    }
    sweep = children["sweep"]
    tests = pd.read_csv(
        tracking.download_artifacts(sweep.info.run_id, "sweep/tests.csv", str(folder))
    )
    return {
        "class": sweep.data.tags["sweep_verdict_class"],
        "scores": {f: children[f].data.metrics for f in ("cnn", "scatnet")},
        "tests": tests.set_index("size"),
    }


@pytest.mark.skipif(not OLIVETTI.exists(), reason="../shared/data is not beside the project")
def test_two_seeds_give_one_verdict_and_overlapping_intervals(tmp_path, mlflow_local) -> None:
    tracking = MlflowClient(tracking_uri=mlflow_local, registry_uri=mlflow_local)
    one, two = (study(tracking, seed, tmp_path / str(seed)) for seed in (1, 2))

    assert one["class"] == two["class"]
    for this, other in ((one, two), (two, one)):
        for family, scores in this["scores"].items():
            estimate = other["scores"][family]["test_balanced_accuracy"]
            low, high = scores["test_balanced_accuracy_low"], scores["test_balanced_accuracy_high"]
            assert low <= estimate <= high, f"{family}: other seed's {estimate} outside"
        for size, row in this["tests"].iterrows():
            if size in other["tests"].index:  # sizes depend only on the split sizes
                estimate = other["tests"].loc[size, "difference"]
                assert row["low"] <= estimate <= row["high"], f"size {size}: {estimate} outside"
