"""The method registry: every configured method registered, one call and one return type each,
and what an entry says about its method holds."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
import torch

from glasses.config import PROFILES, XAIConfig, XAIMethod, resolve_config
from glasses.xai.explain import Explanation
from glasses.xai.methods import MAIN, METHODS, SCATTER_PAIRS, explain, explanation_cost

TINY = resolve_config("tiny")
SIZE = 32
# A value other than the tiny profile's for every setting some method reads.
CHANGED = {
    "ig_steps": 5,
    "ig_method": "riemann_middle",
    "ig_batch_size": 3,
    "ig_dtype": "float64",
    "lime_samples": 20,
    "shap_max_evals": 30,
    "batch_size": 7,
}


def test_every_configured_method_is_registered_in_the_configurations_order() -> None:
    assert tuple(METHODS) == get_args(XAIMethod)
    assert all(spec.name == name for name, spec in METHODS.items())
    for profile in PROFILES:
        assert set(resolve_config(profile).xai.sample_methods) <= set(METHODS)


def test_entries_name_registered_methods_and_real_settings() -> None:
    for spec in METHODS.values():
        assert set(spec.settings) <= set(XAIConfig.model_fields), spec.name
        assert set(spec.compared_with) <= set(METHODS), spec.name
        assert spec.reference is None or spec.reference in METHODS
    assert {name for pair in SCATTER_PAIRS for name in pair} <= set(MAIN)
    assert MAIN == ("ig", "ig_captum", "lime", "shap")  # what `glasses explain all` draws


@pytest.mark.parametrize("kind", ["cnn", "scatnet"])
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_returns_one_explanation_of_the_declared_shapes(
    tiny_model, images: torch.Tensor, kind: str, method: XAIMethod
) -> None:
    spec = METHODS[method]
    result = spec.attribute(tiny_model(kind), images, torch.tensor([0, 1]), TINY.xai, seed=0)
    assert type(result) is Explanation and result.method == method
    assert result.maps.shape == (2, SIZE, SIZE) and np.isfinite(result.maps).all()
    assert result.seconds > 0
    if spec.per_channel:
        assert result.raw.shape == (2, 3, SIZE, SIZE)
        np.testing.assert_allclose(result.maps, result.raw.sum(axis=1), rtol=1e-6)
    else:
        assert result.raw is None
    if spec.gap is None:
        assert result.gaps is None
    else:
        assert result.gaps.shape == (2,) and (result.gaps >= 0).all()


@pytest.mark.parametrize("method", list(METHODS))
def test_a_method_reads_no_setting_but_its_own(
    tiny_model, images: torch.Tensor, method: XAIMethod
) -> None:
    spec = METHODS[method]
    read = {name for other in METHODS.values() for name in other.settings}
    assert read <= set(CHANGED), "give CHANGED a value for every setting a method reads"
    others = {name: value for name, value in CHANGED.items() if name not in spec.settings}
    model, targets = tiny_model("cnn"), torch.tensor([1, 0])
    mine = explain(model, images, targets, method, TINY.xai, seed=3).maps
    changed = explain(model, images, targets, method, TINY.xai.model_copy(update=others), seed=3)
    np.testing.assert_array_equal(changed.maps, mine)


@pytest.mark.parametrize("kind", ["cnn", "scatnet"])
def test_every_from_scratch_ig_agrees_with_its_captum_reference(
    tiny_model, images: torch.Tensor, kind: str
) -> None:
    """Through the registry as the pipeline calls it: same baseline, rule and step count."""
    model, targets = tiny_model(kind), torch.tensor([0, 1])
    checked = [(name, spec.reference) for name, spec in METHODS.items() if spec.reference]
    assert checked == [("ig", "ig_captum"), ("ig_random", "ig_captum_random")]
    for scratch, reference in checked:
        ours = explain(model, images, targets, scratch, TINY.xai, seed=0).raw.ravel()
        theirs = explain(model, images, targets, reference, TINY.xai, seed=0).raw.ravel()
        assert np.corrcoef(ours, theirs)[0, 1] >= 0.99999, scratch


def test_the_scatnets_explanations_are_ordered_before_the_cnns_costliest_first() -> None:
    """At `quick` sizes every ScatNet method took longer than any CNN method
    (`benchmarks.xai_parts`): the order the stage starts its tasks in."""
    settings = resolve_config("quick").xai
    costs = {
        (family, method): explanation_cost(family, method, 10, settings)
        for family in ("cnn", "scatnet")
        for method in METHODS
    }
    order = sorted(costs, key=costs.get, reverse=True)
    assert {family for family, _ in order[: len(METHODS)]} == {"scatnet"}
    assert order[0] == ("scatnet", "lime")  # 150 samples per image, against IG's 3 x 32 + 2
    more = settings.model_copy(update={"lime_samples": 2 * settings.lime_samples})
    assert explanation_cost("cnn", "lime", 10, more) == 2 * costs["cnn", "lime"]
