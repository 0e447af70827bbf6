"""The explanation stage's report: "which explanation should I believe?" first, then the
agreement between methods, completeness gaps, scratch IG against Captum and timings. Built
here in full; the task that publishes it only logs what `xai_report` returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from glasses.tables import markdown_table, with_intervals
from glasses.xai.correctness import Evidence, correctness_table, localisation_table
from glasses.xai.explain import Explanation
from glasses.xai.methods import METHODS
from glasses.xai.randomisation_figure import cascade_figure


class Explained(Protocol):
    """One family's explanation of some rows (`tasks.xai.Explained`)."""

    family: str
    rows: np.ndarray
    explanation: Explanation


@dataclass
class XAIReport:
    """What the XAI run logs: tables and figures by artifact path, metrics, the summary."""

    tables: dict[str, pd.DataFrame]
    figures: dict[str, Figure]
    metrics: dict[str, float]
    markdown: str


def ig_captum_agreement(explained: Sequence[Explained]) -> dict[str, float]:
    """Scratch IG vs Captum IG (each method vs its `reference`) on the same images, baseline,
    rule and step count: Pearson correlation and relative L2 distance of the raw maps."""
    agreement = {}
    for family in sorted({e.family for e in explained}):
        own = {e.explanation.method: e.explanation for e in explained if e.family == family}
        references = [(name, spec.reference) for name, spec in METHODS.items() if spec.reference]
        for scratch, reference in references:
            if scratch in own and reference in own:
                a, b = own[scratch].raw.ravel(), own[reference].raw.ravel()
                agreement[f"{family}_{scratch}_vs_captum_pearson"] = float(np.corrcoef(a, b)[0, 1])
                agreement[f"{family}_{scratch}_vs_captum_relative_l2"] = float(
                    np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)
                )
    return agreement


def gap_table(explained: Sequence[Explained]) -> pd.DataFrame:
    """One row per image of every method with an axiom gap (completeness, additivity)."""
    return pd.DataFrame(
        [
            {"model": e.family, "method": e.explanation.method, "row": int(row), "gap": float(gap)}
            for e in explained
            if e.explanation.gaps is not None
            for row, gap in zip(e.rows, e.explanation.gaps, strict=True)
        ]
    )


def xai_metrics(explained: Sequence[Explained]) -> dict[str, float]:
    """IG vs Captum agreement, seconds per family and method, and mean axiom gaps."""
    metrics = ig_captum_agreement(explained)
    for e in explained:
        key = f"{e.family}_{e.explanation.method}"
        metrics[f"seconds_{key}"] = metrics.get(f"seconds_{key}", 0.0) + e.explanation.seconds
        if e.explanation.gaps is not None:
            metrics[f"gap_mean_{key}"] = float(np.mean(e.explanation.gaps))
    return metrics


_INTERVALS = {
    "relevance mass": (
        "relevance_mass_accuracy",
        "relevance_mass_ci_low",
        "relevance_mass_ci_high",
    ),
    "mass / chance": (
        "relevance_mass_to_chance",
        "relevance_mass_to_chance_ci_low",
        "relevance_mass_to_chance_ci_high",
    ),
    "pointing game": ("pointing_game", "pointing_game_ci_low", "pointing_game_ci_high"),
    "deletion area": ("deletion_area", "deletion_area_ci_low", "deletion_area_ci_high"),
    "final rank correlation": ("final_rank_correlation", "final_rank_ci_low", "final_rank_ci_high"),
}


def _markdown(
    believe: pd.DataFrame, agreement: pd.DataFrame, metrics: dict[str, float], threshold: float
) -> str:
    readable = with_intervals(believe, _INTERVALS).set_index(["model", "method"])
    localisation = readable[
        ["relevance mass", "mask_area_share", "mass / chance", "pointing game", "n_localisation"]
    ].rename(columns={"mask_area_share": "mask area (chance)"})
    faithfulness = readable[["deletion area", "n_deletion"]]
    sanity = readable[
        [
            "randomisation_passed",
            "final rank correlation",
            "edge_correlation",
            "randomised_edge_correlation",
            "n_randomisation",
        ]
    ].rename(
        columns={
            "randomisation_passed": "passed",
            "edge_correlation": "trained maps vs edges",
            "randomised_edge_correlation": "randomised maps vs edges",
        }
    )
    pearson = with_intervals(
        agreement[agreement["metric"] == "pearson"], {"Pearson": ("mean", "ci_low", "ci_high")}
    ).drop(columns="metric")
    return (
        "# Which explanation should I believe?\n\n"
        "## Localisation on the glasses masks\n\n"
        "Relevance mass: the share of positive attribution inside the mask (higher is better); "
        "a uniform map scores the mask's area share, its chance level, so mass / chance above 1 "
        "beats chance. Pointing game: a maximum of the map (any tied one) lies in the mask. "
        "Per image in tables/localisation_per_image.csv.\n\n"
        f"{markdown_table(localisation, 3)}\n\n"
        "## Faithfulness: deletion area (lower is better)\n\n"
        f"{markdown_table(faithfulness, 3)}\n\n"
        "## Model randomisation (Adebayo et al.)\n\n"
        "Rank correlation of |maps| between the trained model and the model with every "
        f"layer randomised; passes below {threshold}. Control: the same measure between the "
        "maps and the image's Sobel edges, which never see the model. A method that fails while "
        "its randomised maps are as close to the edges as to the trained maps shows the input's "
        "structure, not the model. The whole cascade: figures/randomisation_cascade.png.\n\n"
        f"{markdown_table(sanity, 3)}\n\n"
        "## Agreement between methods (Pearson, mean and 95 % bootstrap interval)\n\n"
        f"{markdown_table(pearson.set_index(['model', 'method_a', 'method_b']), 3)}\n\n"
        "## Scratch IG vs Captum\n\n"
        + "\n".join(f"- {k}: {v:.6f}" for k, v in metrics.items() if "captum" in k)
        + "\n"
    )


def xai_report(
    explained: Sequence[Explained],
    evidence: Sequence[Evidence],
    agreement: pd.DataFrame,
    threshold: float,
    seed: int,
) -> XAIReport:
    """The report of `explained` (every family's and method's maps), the `evidence` of the
    checked ones and the methods' `agreement` (`glasses.xai.agreement.summarise_agreement`);
    a map passes the randomisation check below `threshold`; `seed` draws the intervals."""
    believe = correctness_table(evidence, threshold=threshold, seed=seed)
    randomisation = pd.concat([e.randomisation for e in evidence], ignore_index=True)
    metrics = xai_metrics(explained)
    return XAIReport(
        tables={
            "tables/correctness.csv": believe.set_index(["model", "method"]),
            "tables/localisation_per_image.csv": localisation_table(evidence),
            "tables/randomisation.csv": randomisation,
            "tables/completeness_and_additivity_gaps.csv": gap_table(explained),
        },
        figures={"figures/randomisation_cascade.png": cascade_figure(randomisation, threshold)},
        metrics=metrics,
        markdown=_markdown(believe, agreement, metrics, threshold),
    )
