"""The XAI report on a tiny input: what it logs, and the metrics of scratch IG against Captum."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from glasses.xai.correctness import Evidence
from glasses.xai.explain import Explanation
from glasses.xai.report import XAIReport, ig_captum_agreement, xai_report


@dataclass
class Explained:
    family: str
    rows: np.ndarray
    explanation: Explanation


def explained(method: str, raw: np.ndarray, gaps: np.ndarray | None, seconds: float) -> Explained:
    maps = raw.sum(axis=1)
    return Explained("cnn", np.array([3, 5]), Explanation(method, maps, raw, gaps, seconds))


def randomisation(method: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"step": [0, 1], "layer": ["none", "fc"], "mean": [1.0, 0.1],
         "ci_low": [1.0, 0.0], "ci_high": [1.0, 0.2], "n": [2, 2],
         "edge_mean": [0.3, 0.2], "edge_ci_low": [0.3, 0.2], "edge_ci_high": [0.3, 0.2],
         "model": "cnn", "method": method}
    )  # fmt: skip


@pytest.fixture
def report() -> XAIReport:
    raw = np.random.default_rng(0).normal(size=(2, 3, 4, 4))
    maps = [
        explained("ig", raw, np.array([0.1, 0.3]), 2.0),
        explained("ig_captum", raw * 2, None, 1.0),
    ]
    evidence = [
        Evidence("cnn", "ig", [3, 5], [0.9, 0.7], [0.1, 0.2], [True, False], [0.2, 0.3],
                 randomisation("ig")),
    ]  # fmt: skip
    agreement = pd.DataFrame(
        [("cnn", "ig", "ig_captum", "pearson", 1.0, 1.0, 1.0, 2),
         ("cnn", "ig", "ig_captum", "spearman", 1.0, 1.0, 1.0, 2)],
        columns=["model", "method_a", "method_b", "metric", "mean", "ci_low", "ci_high", "n"],
    )  # fmt: skip
    return xai_report(maps, evidence, agreement, threshold=0.5, seed=0)


def test_the_report_names_every_table_and_figure_it_logs(report) -> None:
    assert sorted(report.tables) == [
        "tables/completeness_and_additivity_gaps.csv",
        "tables/correctness.csv",
        "tables/localisation_per_image.csv",
        "tables/randomisation.csv",
    ]
    assert list(report.figures) == ["figures/randomisation_cascade.png"]
    assert report.tables["tables/correctness.csv"].index.names == ["model", "method"]
    gaps = report.tables["tables/completeness_and_additivity_gaps.csv"]
    assert gaps.to_dict("records") == [
        {"model": "cnn", "method": "ig", "row": 3, "gap": 0.1},
        {"model": "cnn", "method": "ig", "row": 5, "gap": 0.3},
    ]


def test_the_metrics_are_timings_gaps_and_captum_agreement(report) -> None:
    assert report.metrics["seconds_cnn_ig"] == 2.0
    assert report.metrics["seconds_cnn_ig_captum"] == 1.0
    assert report.metrics["gap_mean_cnn_ig"] == pytest.approx(0.2)
    assert report.metrics["cnn_ig_vs_captum_pearson"] == pytest.approx(1.0)
    assert report.metrics["cnn_ig_vs_captum_relative_l2"] == pytest.approx(0.5)


def test_the_summary_starts_with_which_explanation_to_believe(report) -> None:
    assert report.markdown.startswith("# Which explanation should I believe?\n")
    for heading in ("## Localisation", "## Faithfulness", "## Model randomisation",
                    "## Agreement between methods", "## Scratch IG vs Captum"):  # fmt: skip
        assert heading in report.markdown
    assert "passes below 0.5" in report.markdown
    assert "- cnn_ig_vs_captum_pearson: 1.000000" in report.markdown
    assert "seconds_cnn_ig:" not in report.markdown  # (ig_captum's seconds are listed, as before)


def test_captum_agreement_needs_both_implementations() -> None:
    raw = np.ones((1, 3, 2, 2))
    assert ig_captum_agreement([explained("ig", raw, None, 0.0)]) == {}
