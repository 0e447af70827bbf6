"""Attribution methods (IG from scratch, Captum IG, LIME, SHAP) and their figures.

A method is run as `METHODS[name].attribute(model, images, targets, settings, seed)`, or by name
with `glasses.xai.methods.explain` (not re-exported here: `glasses.xai.explain` is the module of
`Explanation`, what every method returns). `select_images` decides which test images each method
explains; `agreement` and `correctness` score the maps; `overlays` and `randomisation_figure`
draw them.
"""

from glasses.xai.agreement import (
    METRICS,
    agreement_table,
    agreement_values,
    compare_maps,
    model_agreement_test,
    model_agreement_tests,
    summarise_agreement,
)
from glasses.xai.baselines import black_baseline, random_baseline
from glasses.xai.captum_ig import captum_integrated_gradients
from glasses.xai.correctness import (
    CHECKS,
    Evidence,
    cascading_randomisation,
    checks_table,
    deletion_area,
    deletion_curve,
    deletion_evidence,
    deletion_fill,
    edge_map,
    localisation_evidence,
    mask_area_share,
    method_ranking,
    pointing_chance,
    pointing_game,
    randomisation_summary,
    relevance_mass_accuracy,
)
from glasses.xai.explain import Explanation
from glasses.xai.integrated_gradients import completeness_gap, integrated_gradients
from glasses.xai.lime_map import lime_attributions
from glasses.xai.maps import normalise, to_map
from glasses.xai.methods import (
    MAIN,
    METHODS,
    SCATTER_PAIRS,
    MethodSpec,
    predicted_targets,
)
from glasses.xai.overlays import (
    attribution_histograms_figure,
    method_overlays_figure,
    pairwise_scatter_figure,
    shap_vs_ig_figure,
)
from glasses.xai.randomisation_figure import cascade_figure
from glasses.xai.selection import NAMED, ImageSelection, select_images
from glasses.xai.shap_map import shap_attributions

__all__ = [
    # the methods
    "MAIN",
    "METHODS",
    "SCATTER_PAIRS",
    "Explanation",
    "MethodSpec",
    "predicted_targets",
    # their implementations
    "black_baseline",
    "captum_integrated_gradients",
    "completeness_gap",
    "integrated_gradients",
    "lime_attributions",
    "random_baseline",
    "shap_attributions",
    # which images
    "NAMED",
    "ImageSelection",
    "select_images",
    # maps, agreement and correctness
    "CHECKS",
    "METRICS",
    "Evidence",
    "agreement_table",
    "agreement_values",
    "cascading_randomisation",
    "checks_table",
    "compare_maps",
    "deletion_area",
    "deletion_curve",
    "deletion_evidence",
    "deletion_fill",
    "edge_map",
    "localisation_evidence",
    "mask_area_share",
    "method_ranking",
    "model_agreement_test",
    "model_agreement_tests",
    "normalise",
    "pointing_chance",
    "pointing_game",
    "randomisation_summary",
    "relevance_mass_accuracy",
    "summarise_agreement",
    "to_map",
    # figures
    "attribution_histograms_figure",
    "cascade_figure",
    "method_overlays_figure",
    "pairwise_scatter_figure",
    "shap_vs_ig_figure",
]
