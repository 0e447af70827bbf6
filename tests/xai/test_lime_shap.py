"""LIME and SHAP maps on both tiny models: shapes, SHAP additivity, seeded reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import shap
import torch
from lime.lime_image import LimeImageExplainer

from glasses.xai.lime_map import lime_attributions, model_outputs, segment, superpixel_map
from glasses.xai.shap_map import ADDITIVITY_TOLERANCE, shap_attributions

SIZE = 32


def test_segments_are_numbered_from_zero_without_gaps(images: torch.Tensor) -> None:
    for image in images.permute(0, 2, 3, 1).double().numpy():
        segments = segment(image)
        assert segments.shape == (SIZE, SIZE)
        assert np.array_equal(np.unique(segments), np.arange(segments.max() + 1))
        assert 10 <= segments.max() + 1 <= 60


def test_model_outputs_take_uint8_and_float_alike(tiny_model, images: torch.Tensor) -> None:
    model = tiny_model("cnn")
    channels_last = images.permute(0, 2, 3, 1).numpy()
    as_bytes = np.round(channels_last * 255).astype(np.uint8)
    torch.testing.assert_close(model_outputs(model, as_bytes), model_outputs(model, channels_last))
    torch.testing.assert_close(model_outputs(model, channels_last), model(images).detach())


@pytest.mark.parametrize("kind", ["cnn", "scatnet"])
def test_lime_maps_have_the_input_shape(tiny_model, images: torch.Tensor, kind: str) -> None:
    maps = lime_attributions(
        tiny_model(kind), images, [0, 1], num_samples=60, seed=0, batch_size=25
    )
    assert maps.shape == (2, SIZE, SIZE)
    assert np.isfinite(maps).all()
    assert np.abs(maps).max() > 0


def test_lime_is_reproducible_for_a_fixed_seed(tiny_model, images: torch.Tensor) -> None:
    model = tiny_model("cnn")
    first = lime_attributions(model, images, 1, num_samples=60, seed=7, batch_size=25)
    again = lime_attributions(model, images, 1, num_samples=60, seed=7, batch_size=25)
    other = lime_attributions(model, images, 1, num_samples=60, seed=8, batch_size=25)
    whole = lime_attributions(model, images, 1, num_samples=60, seed=7, batch_size=256)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # The batch size only groups the same perturbed images: the model's rounding at most, which
    # oneDNN makes depend on the batch on some CPUs (seen: 1.2e-9 on maps of 7e-4, Intel Xeon);
    # another grouping of the images would move the maps by their own size.
    np.testing.assert_allclose(whole, first, rtol=1e-6, atol=1e-4 * np.abs(first).max())


def test_vectorised_perturbations_match_stock_lime(tiny_model, images: torch.Tensor) -> None:
    """Same seed, same draws, same images: the stock loop and ours give the same explanation."""
    model = tiny_model("cnn")
    image = images[1].permute(1, 2, 0).double().numpy()
    explanation = LimeImageExplainer(random_state=5, feature_selection="none").explain_instance(
        image,
        lambda batch: torch.softmax(model_outputs(model, batch), 1).double().numpy(),
        labels=(1,),
        hide_color=0,
        top_labels=None,
        num_samples=60,
        batch_size=25,
        segmentation_fn=segment,
        random_seed=5,
    )
    ours = lime_attributions(model, images[1:], 1, num_samples=60, seed=5, batch_size=25)
    np.testing.assert_allclose(ours[0], superpixel_map(explanation, 1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["cnn", "scatnet"])
def test_shap_maps_have_the_input_shape_and_add_up(
    tiny_model, images: torch.Tensor, kind: str
) -> None:
    values, gaps = shap_attributions(tiny_model(kind), images, [0, 1], max_evals=120, seed=0)
    assert values.shape == (2, 3, SIZE, SIZE)
    assert gaps.shape == (2,)
    assert np.abs(values).max() > 0
    assert (gaps < ADDITIVITY_TOLERANCE).all()


def _global_state() -> tuple:
    name, keys, position, *rest = np.random.get_state()
    return name, keys.tobytes(), position, *rest


@pytest.mark.parametrize("method", ["shap", "lime"])
def test_explanations_repeat_exactly_and_leave_numpys_global_generator_alone(
    tiny_model, images: torch.Tensor, method: str
) -> None:
    """Neither explainer may read or advance numpy's global generator: another thread's draws
    (or reseeds) would then change the maps, and the maps the other thread's numbers."""
    model = tiny_model("cnn")

    def explain_twice() -> np.ndarray:
        if method == "shap":
            return shap_attributions(model, images, 1, max_evals=60, seed=2)[0]
        return lime_attributions(model, images, 1, num_samples=40, seed=2, batch_size=25)

    np.random.seed(123)
    before = _global_state()
    first = explain_twice()
    assert _global_state() == before
    np.random.seed(999)  # a different global state must not change the maps
    np.testing.assert_array_equal(explain_twice(), first)


def test_shap_draws_what_a_global_seed_gave_stock_shap(tiny_model, images: torch.Tensor) -> None:
    """The tie-breaking draws moved off the global generator, the algorithm did not: stock
    shap under np.random.seed(seed) gives the same values to the last bit."""
    model = tiny_model("scatnet")
    ours, _ = shap_attributions(model, images, [0, 1], max_evals=80, seed=3)
    masker = shap.maskers.Image(0.0, (SIZE, SIZE, 3))
    explainer = shap.PartitionExplainer(lambda b: model_outputs(model, b).numpy(), masker)
    pixels = images.permute(0, 2, 3, 1).double().numpy()
    for image, target, values in zip(pixels, [0, 1], ours, strict=True):
        np.random.seed(3)
        stock = explainer(image[None], max_evals=80, batch_size=64, outputs=[target], silent=True)
        np.testing.assert_array_equal(stock.values[0, ..., 0].transpose(2, 0, 1), values)
