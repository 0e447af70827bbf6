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


def evidence(method: str, mass: float) -> Evidence:
    """Four people, one image each; `mass` on masks of share 0.1; deletion beating random order
    by 0.2; randomisation leaving maps as close to the trained ones as the edges are."""
    people = {"row": [3, 5, 7, 9], "person": [0, 1, 2, 3], "label": [1, 0, 1, 0]}
    localisation = pd.DataFrame(
        people | {"relevance_mass": [mass, mass + 0.1, mass, mass - 0.1], "mask_share": 0.1,
                  "pointing": [1.0, 0.0, 1.0, 0.0], "pointing_chance": 0.5}
    )  # fmt: skip
    deletion = pd.DataFrame(people | {"area": [0.2, 0.3, 0.25, 0.2], "random_area": 0.45})
    steps = [
        pd.DataFrame(
            {"step": step, "layer": layer, "image": range(4), "spearman": values,
             "ssim": values, "edge_spearman": [0.3, 0.2, 0.25, 0.3],
             "edge_ssim": [0.3, 0.2, 0.25, 0.3], "person": people["person"],
             "label": people["label"]}
        )
        for step, layer, values in ((0, "none", 1.0), (1, "fc", [0.3, 0.2, 0.2, 0.35]))
    ]  # fmt: skip
    return Evidence("cnn", method, localisation, deletion, pd.concat(steps, ignore_index=True))


@pytest.fixture
def report() -> XAIReport:
    raw = np.random.default_rng(0).normal(size=(2, 3, 4, 4))
    maps = [
        explained("ig", raw, np.array([0.1, 0.3]), 2.0),
        explained("ig_captum", raw * 2, None, 1.0),
    ]
    agreement = pd.DataFrame(
        [("cnn", "ig", "ig_captum", "pearson", 1.0, 1.0, 1.0, 2),
         ("cnn", "ig", "ig_captum", "spearman", 1.0, 1.0, 1.0, 2)],
        columns=["model", "method_a", "method_b", "metric", "mean", "ci_low", "ci_high", "n"],
    )  # fmt: skip
    tests = pd.DataFrame(
        {"p_value": [0.01, 0.04, 0.5], "p_adjusted": [0.03, 0.08, 0.5],
         "correction": "Holm", "significant": [True, False, False]}
    )  # fmt: skip
    return xai_report(
        maps,
        [evidence("ig", 0.6), evidence("flat", 0.1)],
        agreement,
        tests,
        {"glasses": 2, "no glasses": 2},
        seed=0,
    )


def test_the_report_names_every_table_and_figure_it_logs(report) -> None:
    assert sorted(report.tables) == [
        "tables/checks.csv",
        "tables/completeness_and_additivity_gaps.csv",
        "tables/deletion_per_image.csv",
        "tables/localisation_per_image.csv",
        "tables/randomisation.csv",
        "tables/randomisation_per_image.csv",
        "tables/ranking.csv",
    ]
    assert list(report.figures) == ["figures/randomisation_cascade.png"]
    assert report.tables["tables/checks.csv"].index.names == ["model", "method", "check"]
    assert len(report.tables["tables/localisation_per_image.csv"]) == 8  # 4 images x 2 methods
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


def test_the_summary_starts_with_which_method_to_believe(report) -> None:
    assert report.markdown.startswith("# Which explanation should I believe?\n")
    assert "Explained and checked test images: 2 glasses, 2 no glasses." in report.markdown
    for heading in ("## Which method to believe", "### cnn", "## Every check against",
                    "## Agreement between methods", "## Scratch IG vs Captum"):  # fmt: skip
        assert heading in report.markdown
    section = report.markdown.split("## Which method to believe")[1].split("## Every")[0]
    assert "- relevance mass: beat the reference: ig; could not decide" in section
    assert "- deletion: beat the reference: ig, flat;" in section
    assert "- pointing game: beat the reference: none; could not decide (interval spans 0): " \
        "ig, flat;" in section  # fmt: skip
    assert "1. ig (" in section and "2. flat (" in section
    assert "1 of 3 paired tests" in report.markdown and "after Holm's correction" in report.markdown
    assert "- cnn_ig_vs_captum_pearson: 1.000000" in report.markdown
    assert "seconds_cnn_ig:" not in report.markdown


def test_the_metrics_count_the_explained_images_per_class(report) -> None:
    assert report.metrics["images_glasses"] == report.metrics["images_no_glasses"] == 2
    assert report.metrics["agreement_tests_significant_holm"] == 1


def test_captum_agreement_needs_both_implementations() -> None:
    raw = np.ones((1, 3, 2, 2))
    assert ig_captum_agreement([explained("ig", raw, None, 0.0)]) == {}
