"""The CNN, the ScatNet and their shared head: shapes of the seed study, logits, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from glasses.config import resolve_config
from glasses.models import scatnet as scatnet_module
from glasses.models.cnn import CNN
from glasses.models.head import Classifier, InputNorm
from glasses.models.scatnet import ScatNet, coefficient_count, scattering_transform

PAPER = resolve_config("paper")
TINY = resolve_config("tiny")


def linear_widths(head: Classifier) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in head.layers if isinstance(m, nn.Linear)]


def test_paper_cnn_has_the_seed_studys_head() -> None:
    torch.manual_seed(0)
    model = CNN(PAPER.cnn, 128)
    # 128 → conv 11, pool → 59 → conv 9, pool → 25 → conv 3, pool → 11; 11 * 11 * 64 = 7744.
    assert linear_widths(model.head) == [(7744, 256), (256, 32), (32, 2)]
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(11, 11), (9, 9), (3, 3)]
    assert [c.out_channels for c in convs] == [32, 32, 64]
    assert isinstance(model.features[0], InputNorm)
    output = model.eval()(torch.rand(3, 3, 128, 128))
    assert output.shape == (3, 2)


def test_cnn_returns_logits_not_probabilities() -> None:
    torch.manual_seed(0)
    model = CNN(TINY.cnn, 32).eval()
    last = model.head.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([3.0, -7.0]))
    output = model(torch.rand(4, 3, 32, 32))
    # Softmax would give rows summing to 1 with values in (0, 1).
    torch.testing.assert_close(output, torch.tensor([[3.0, -7.0]]).expand(4, 2))


def test_input_norm_maps_unit_range_around_zero() -> None:
    norm = InputNorm()
    torch.testing.assert_close(norm(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([-2.0, 0.0, 2.0]))


@pytest.mark.parametrize(("size", "kernels"), [(32, (11, 9, 3)), (16, (5, 5, 3)), (24, (7, 7, 3))])
def test_kernels_too_large_for_the_image_name_the_parameters(size, kernels) -> None:
    config = PAPER.cnn.model_copy(update={"kernels": kernels})
    with pytest.raises(ValueError, match=r"cnn\.kernels") as caught:
        CNN(config, size)
    assert f"data.image_size {size}" in str(caught.value)


def test_smallest_fitting_image_builds() -> None:
    # (22 - 4) // 2 = 9 → (9 - 2) // 2 = 3 → (3 - 2) // 2 = 0: too small; 24 gives 1 pixel.
    config = PAPER.cnn.model_copy(update={"kernels": (5, 3, 3)})
    with pytest.raises(ValueError, match=r"cnn\.kernels"):
        CNN(config, 22)
    assert linear_widths(CNN(config, 24).head)[0] == (64, 256)


def test_coefficient_count() -> None:
    assert coefficient_count(2, 8) == 81
    assert coefficient_count(1, 8) == 9
    assert coefficient_count(3, 8) == 1 + 24 + 64 * 3
    assert coefficient_count(2, 4) == 25


def test_paper_scatnet_head_input(monkeypatch) -> None:
    """3 colours x 81 paths x 32 x 32 = 248832 inputs, 1024 → 1024 → 2; head not allocated."""
    built = {}

    class Recorder(nn.Module):
        def __init__(self, in_features, hidden, dropout, n_classes=2):
            super().__init__()
            built.update(in_features=in_features, hidden=hidden, n_classes=n_classes)

    monkeypatch.setattr(scatnet_module, "Classifier", Recorder)
    model = ScatNet(PAPER.scatnet, 128)
    assert built == {"in_features": 248832, "hidden": (1024, 1024), "n_classes": 2}
    assert model.coefficient_mean.shape == (3, 81, 32, 32)


def test_tiny_scatnet_shapes() -> None:
    torch.manual_seed(0)
    model = ScatNet(TINY.scatnet, 32).eval()
    side = 32 // 2**TINY.scatnet.J
    count = coefficient_count(TINY.scatnet.J, TINY.scatnet.L)
    assert linear_widths(model.head)[0] == (3 * count * side * side, 16)
    coefficients = model.coefficients(torch.rand(2, 3, 32, 32))
    assert coefficients.shape == (2, 3, count, side, side)
    assert model.classify(coefficients).shape == (2, 2)


def test_scatnet_forward_is_classify_of_coefficients() -> None:
    torch.manual_seed(0)
    model = ScatNet(TINY.scatnet, 32).eval()
    images = torch.rand(3, 3, 32, 32)
    coefficients = model.coefficients(images)
    model.fit_standardisation(coefficients)
    torch.testing.assert_close(model(images), model.classify(model.coefficients(images)))


def test_scatnet_standardisation_is_fitted_per_coefficient() -> None:
    model = ScatNet(TINY.scatnet, 32)
    coefficients = torch.rand(5, *model.coefficient_mean.shape) * 10
    coefficients[:, 0, 0] = 4.0  # constant coefficient: std clamped, not zero
    model.fit_standardisation(coefficients)
    torch.testing.assert_close(model.coefficient_mean, coefficients.mean(0))
    assert (model.coefficient_std > 0).all()
    assert torch.allclose(model.coefficient_std[0, 0], torch.tensor(1e-6))
    # Buffers travel with the state dict, so a registered model keeps its standardisation.
    assert "coefficient_mean" in model.state_dict()


def test_scatnet_standardisation_of_some_rows_read_in_chunks() -> None:
    """Only the training rows count, and reading them chunk by chunk changes nothing."""
    model = ScatNet(TINY.scatnet, 32)
    coefficients = torch.rand(9, *model.coefficient_mean.shape) * 3
    rows = torch.tensor([0, 2, 3, 5, 8])
    model.fit_standardisation(coefficients, rows, chunk=2)
    torch.testing.assert_close(model.coefficient_mean, coefficients[rows].mean(0))
    torch.testing.assert_close(model.coefficient_std, coefficients[rows].std(0))


def test_gradients_reach_the_input_pixels_through_the_scattering() -> None:
    torch.manual_seed(0)
    model = ScatNet(TINY.scatnet, 32).eval()
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    model(images)[:, 1].sum().backward()
    assert images.grad is not None
    assert images.grad.abs().sum() > 0
    assert torch.isfinite(images.grad).all()
    # The wavelet filters are fixed: nothing in the scattering is a trainable parameter.
    assert all(name.startswith("head.") for name, _ in model.named_parameters())


def test_the_memo_scatters_each_image_once_whatever_its_batch() -> None:
    torch.manual_seed(0)
    model = ScatNet(TINY.scatnet, 32).eval()
    images, other = torch.rand(5, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad(), model.reusing_scattering(2**30) as memo:
        first = model.coefficients(images)
        regrouped = model.coefficients(torch.cat([images[[4, 1]], other]))
        assert memo.hits == 2
    # Bit for bit what the scattering gives, hits and new images alike.
    assert torch.equal(first, model.scattering(images))
    assert torch.equal(regrouped, model.scattering(torch.cat([images[[4, 1]], other])))
    assert model.memo is None  # gone after the block


def test_the_memo_compares_images_not_only_their_digests(monkeypatch) -> None:
    monkeypatch.setattr(scatnet_module, "_image_key", lambda image: "same for every image")
    model = ScatNet(TINY.scatnet, 32).eval()
    first, second = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad(), model.reusing_scattering(2**30) as memo:
        model.coefficients(first)
        assert torch.equal(model.coefficients(second), model.scattering(second))
        assert torch.equal(model.coefficients(first), model.scattering(first))
        assert memo.hits == 1  # the first image, kept; the colliding second one was not


def test_the_memo_keeps_what_fits_and_rescatters_what_needs_a_gradient() -> None:
    model = ScatNet(TINY.scatnet, 32).eval()
    images = torch.rand(5, 3, 32, 32)
    one = 3 * 32 * 32 * 4 + model.scattering(images[:1]).numel() * 4  # bytes per image
    with model.reusing_scattering(2 * one) as memo:
        model.coefficients(images)
        assert memo.stored_bytes == 2 * one
        model.coefficients(images)
        assert memo.hits == 2  # the first two, kept while they fit
        path = images.clone().requires_grad_()
        model(path)[:, 0].sum().backward()
        assert memo.hits == 2 and path.grad is not None and path.grad.abs().sum() > 0


@pytest.mark.parametrize(("size", "J"), [(30, 2), (36, 3)])
def test_image_size_not_divisible_by_two_to_the_j(size, J) -> None:
    with pytest.raises(ValueError, match=rf"2\*\*scatnet\.J = {2**J}"):
        scattering_transform(J, 4, size)
    config = TINY.scatnet.model_copy(update={"J": J})
    with pytest.raises(ValueError, match=f"data.image_size {size}"):
        ScatNet(config, size)


def test_classifier_layers() -> None:
    head = Classifier(12, (8, 4), 0.25, n_classes=3)
    assert linear_widths(head) == [(12, 8), (8, 4), (4, 3)]
    assert isinstance(head.layers[-2], nn.Dropout) and head.layers[-2].p == 0.25
    # Features of any shape are flattened per sample.
    assert head.eval()(torch.rand(5, 3, 2, 2)).shape == (5, 3)
