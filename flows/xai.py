"""The explanation stage: explain both models, compare the explanations, check them."""

from __future__ import annotations

from typing import Any

from flows.concurrency import run_concurrently
from glasses.config import GlassesConfig
from glasses.data.reference import DataRef
from glasses.data.splits import Split
from glasses.families import FAMILIES, SPECS
from glasses.xai.methods import METHODS, explanation_cost
from tasks.xai import (
    check_randomisation,
    explain_rows,
    log_explanation_figures,
    log_explanation_statistics,
    publish_xai_summary,
    score_explanations,
    select_xai_images,
)


def _explanation_cost(call: dict[str, Any]) -> float:
    """An explain or randomisation-check call's cost (`explanation_cost`)."""
    return explanation_cost(call["family"], call["method"], len(call["rows"]), call["config"].xai)


def xai(
    config: GlassesConfig, data: DataRef, split: Split, versions: dict[str, str], run_id: str
) -> str:
    """Explains this run's registered `versions` (family → version) on its test images; logs
    into `run_id` (the `xai` child run); returns the summary markdown."""
    selection = select_xai_images(data, split, config)
    common = {"data": data, "config": config}
    explained = run_concurrently(
        explain_rows,
        [
            {
                "family": family,
                "version": versions[family],
                "method": method,
                "rows": selection.rows(method),
                **common,
            }
            for family in FAMILIES
            for method in METHODS
        ],
        config,
        cost=_explanation_cost,
    )
    log_explanation_figures(explained, data, selection.named, run_id)
    agreement = log_explanation_statistics(explained, selection.sample, run_id)
    checked = [e for e in explained if selection.checked(e.explanation.method)]
    randomisation = run_concurrently(
        check_randomisation,
        [
            {
                "family": e.family,
                "version": versions[e.family],
                "method": e.explanation.method,
                "rows": selection.randomisation_rows,
                "original": selection.randomisation_maps(e.explanation.maps),
                **common,
            }
            for e in checked
        ],
        config,
        cost=_explanation_cost,
    )
    evidence = run_concurrently(
        score_explanations,
        [
            {
                "explained": e,
                "version": versions[e.family],
                "selection": selection,
                "randomisation": table,
                **common,
            }
            for e, table in zip(checked, randomisation, strict=True)
        ],
        config,
        cost=lambda call: SPECS[call["explained"].family].forward_cost,
    )
    summary = publish_xai_summary(explained, evidence, agreement, selection.counts, config, run_id)
    print(summary)
    return summary
