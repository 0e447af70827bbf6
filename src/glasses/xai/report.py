"""The explanation stage's report: "which explanation should I believe?" first (every check as
a difference from its reference, and which method to believe per family), then the agreement
between methods, completeness gaps, scratch IG against Captum and timings. Built here in full;
the task that publishes it only logs what `xai_report` returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from glasses.tables import markdown_table, with_intervals
from glasses.xai.agreement import ALPHA, CORRECTION
from glasses.xai.correctness import (
    CHECKS,
    Evidence,
    checks_table,
    method_ranking,
    randomisation_summary,
)
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


def believe_section(checks: pd.DataFrame, ranking: pd.DataFrame) -> str:
    """ "Which method to believe", per family: for each check, the methods whose interval of
    the difference from the reference lies above 0, those below, and those it could not decide
    (interval spans 0, or undefined); then the ranking on those verdicts alone."""
    lines = ["## Which method to believe", ""]
    for model, own in checks.groupby("model", sort=True):
        lines.append(f"### {model}")
        lines.append("")
        for check in CHECKS:
            verdicts = own[own["check"] == check.name]
            named = {
                verdict: ", ".join(verdicts.loc[verdicts["verdict"] == verdict, "method"]) or "none"
                for verdict in ("beats", "worse", "undecided")
            }
            lines.append(
                f"- {check.name}: beat the reference: {named['beats']}; could not decide "
                f"(interval spans 0): {named['undecided']}; worse than the reference: "
                f"{named['worse']}"
            )
        ranked = ranking[ranking["model"] == model]
        order = ", ".join(
            f"{row.rank}. {row.method} ({row.beats} beaten, {row.worse} worse)"
            for row in ranked.itertuples()
        )
        lines += [f"- ranking (checks beaten, then fewest worse): {order}", ""]
    return "\n".join(lines)


def _agreement_tests_line(tests: pd.DataFrame | None) -> str:
    if tests is None or tests.empty:
        return "No paired tests between the families (one family explained)."
    significant = int(tests["significant"].sum())
    return (
        f"{significant} of {len(tests)} paired tests (CNN vs ScatNet, per pair of methods and "
        f"metric) stay significant at {ALPHA} after {CORRECTION}'s correction across the table "
        f"({int((tests['p_value'] < ALPHA).sum())} before); tables/agreement_cnn_vs_scatnet.csv."
    )


def _markdown(
    checks: pd.DataFrame,
    ranking: pd.DataFrame,
    counts: dict[str, int],
    agreement: pd.DataFrame,
    tests: pd.DataFrame | None,
    metrics: dict[str, float],
) -> str:
    readable = with_intervals(
        checks, {"difference [95 % interval]": ("difference", "low", "high")}
    ).set_index(["model", "method", "check"])[
        ["value", "reference", "difference [95 % interval]", "n", "verdict"]
    ]
    pearson = with_intervals(
        agreement[agreement["metric"] == "pearson"], {"Pearson": ("mean", "ci_low", "ci_high")}
    ).drop(columns="metric")
    explained = ", ".join(f"{count} {name}" for name, count in counts.items())
    meanings = "\n".join(f"- {check.name}: {check.meaning}." for check in CHECKS)
    return (
        "# Which explanation should I believe?\n\n"
        f"Explained and checked test images: {explained}.\n\n"
        f"{believe_section(checks, ranking)}\n"
        "## Every check against its reference\n\n"
        "value and reference are means over images; difference is the mean per-image "
        "difference between them, signed so that positive is better than the reference "
        "(value − reference, or reference − value where lower is better: deletion area, "
        "similarity after randomisation), with a 95 % bootstrap interval over people; a method "
        "beats the reference when the interval lies above 0.\n\n"
        f"{meanings}\n\n"
        f"{markdown_table(readable, 3)}\n\n"
        "Per image: tables/localisation_per_image.csv, tables/deletion_per_image.csv, "
        "tables/randomisation_per_image.csv; the cascade per layer (Spearman and SSIM with "
        "intervals): tables/randomisation.csv and figures/randomisation_cascade.png.\n\n"
        "## Agreement between methods (Pearson, mean and 95 % bootstrap interval)\n\n"
        f"{markdown_table(pearson.set_index(['model', 'method_a', 'method_b']), 3)}\n\n"
        f"{_agreement_tests_line(tests)}\n\n"
        "## Scratch IG vs Captum\n\n"
        + "\n".join(f"- {k}: {v:.6f}" for k, v in metrics.items() if "captum" in k)
        + "\n"
    )


def xai_report(
    explained: Sequence[Explained],
    evidence: Sequence[Evidence],
    agreement: pd.DataFrame,
    tests: pd.DataFrame | None,
    counts: dict[str, int],
    seed: int,
) -> XAIReport:
    """The report of `explained` (every family's and method's maps), the `evidence` of the
    checked ones, the methods' `agreement` (`glasses.xai.agreement.summarise_agreement`) and
    the paired `tests` between families (`model_agreement_tests`, None with one family);
    `counts`: explained images per class; `seed` draws the intervals."""
    checks = checks_table(evidence, seed=seed)
    ranking = method_ranking(checks)
    per_image = {
        part: pd.concat(
            [getattr(e, part).assign(model=e.model, method=e.method) for e in evidence],
            ignore_index=True,
        )
        for part in ("localisation", "deletion", "randomisation")
    }
    cascade = randomisation_summary(per_image["randomisation"], seed=seed)
    metrics = xai_metrics(explained) | {
        f"images_{name.replace(' ', '_')}": float(count) for name, count in counts.items()
    }
    if tests is not None and not tests.empty:
        metrics["agreement_tests_significant_holm"] = float(tests["significant"].sum())
    return XAIReport(
        tables={
            "tables/checks.csv": checks.set_index(["model", "method", "check"]),
            "tables/ranking.csv": ranking.set_index(["model", "method"]),
            "tables/localisation_per_image.csv": per_image["localisation"],
            "tables/deletion_per_image.csv": per_image["deletion"],
            "tables/randomisation_per_image.csv": per_image["randomisation"],
            "tables/randomisation.csv": cascade,
            "tables/completeness_and_additivity_gaps.csv": gap_table(explained),
        },
        figures={"figures/randomisation_cascade.png": cascade_figure(cascade)},
        metrics=metrics,
        markdown=_markdown(checks, ranking, counts, agreement, tests, metrics),
    )
