"""The explanation stage: explain both models, compare the explanations, check them."""

from __future__ import annotations

import numpy as np

from flows.concurrency import run_concurrently
from glasses.config import XAI_METHODS, GlassesConfig
from glasses.data.reference import DataRef, image_set
from glasses.data.splits import Split
from glasses.families import FAMILIES
from glasses.xai.selection import load_masks, named_rows, sample_rows
from tasks.xai import (
    check_randomisation,
    explain_rows,
    log_explanation_figures,
    log_explanation_statistics,
    publish_xai_summary,
    score_explanations,
)


def xai(
    config: GlassesConfig, data: DataRef, split: Split, versions: dict[str, str], run_id: str
) -> str:
    """Explains this run's registered `versions` (family → version) on its test images; logs
    into `run_id` (the `xai` child run); returns the summary markdown."""
    settings = config.xai
    images = image_set(data)
    test_rows = np.where(split.test)[0]
    named = named_rows(images.manifest, test_rows, settings.named_images)
    sample = sample_rows(images.labels, test_rows, named, settings.samples, config.seed)
    masks = {
        int(row): mask
        for row, mask in zip(
            sample, load_masks(images.manifest, sample, config.data.image_size), strict=True
        )
        if mask is not None and mask.any()
    }
    common = {"data": data, "config": config}
    explained = run_concurrently(
        explain_rows,
        [
            {
                "family": family,
                "version": versions[family],
                "method": method,
                "rows": sample if method in settings.sample_methods else np.array(named),
                **common,
            }
            for family in FAMILIES
            for method in XAI_METHODS
        ],
        config,
    )
    log_explanation_figures(explained, data, named, run_id)
    agreement = log_explanation_statistics(explained, sample, run_id)
    checked = [e for e in explained if e.explanation.method in settings.sample_methods]
    randomisation = run_concurrently(
        check_randomisation,
        [
            {
                "family": e.family,
                "version": versions[e.family],
                "method": e.explanation.method,
                "rows": sample[: settings.randomisation_images],
                "original": e.explanation.maps[: settings.randomisation_images],
                **common,
            }
            for e in checked
        ],
        config,
    )
    evidence = run_concurrently(
        score_explanations,
        [
            {
                "explained": e,
                "version": versions[e.family],
                "masks": masks,
                "randomisation": table,
                **common,
            }
            for e, table in zip(checked, randomisation, strict=True)
        ],
        config,
    )
    summary = publish_xai_summary(explained, evidence, agreement, config, run_id)
    print(summary)
    return summary
