"""Channel aggregation and normalisation, shared by the figures and the agreement statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glasses.xai.maps import normalise, to_map


def test_to_map_sums_colour_channels_with_their_signs() -> None:
    attributions = np.zeros((2, 3, 4, 4))
    attributions[0, :, 1, 2] = [1.0, -3.0, 0.5]
    attributions[1, 2] = 2.0
    result = to_map(attributions)
    assert result.shape == (2, 4, 4)
    assert result[0, 1, 2] == pytest.approx(-1.5)
    assert np.all(result[1] == 2.0)
    np.testing.assert_array_equal(to_map(torch.from_numpy(attributions[0])), result[0])


def test_to_map_rejects_maps_without_channels() -> None:
    with pytest.raises(ValueError, match="attributions"):
        to_map(np.zeros((4, 4)))


def test_normalise_maps_into_unit_range_keeping_signs() -> None:
    values = np.array([[2.0, -4.0], [1.0, 0.0]])
    result = normalise(values)
    np.testing.assert_array_equal(result, [[0.5, -1.0], [0.25, 0.0]])
    assert np.abs(result).max() == 1.0


def test_normalise_scales_each_map_of_a_stack_on_its_own() -> None:
    rng = np.random.default_rng(0)
    lime, shap = rng.normal(size=(16, 16)), rng.normal(size=(16, 16))
    stack = np.stack([lime * 1000, shap * 1e-3])
    result = normalise(stack)
    assert result.min() >= -1 and result.max() <= 1
    np.testing.assert_array_equal(np.abs(result).max(axis=(1, 2)), [1.0, 1.0])
    np.testing.assert_allclose(result[0], normalise(lime))


def test_normalise_leaves_an_all_zero_map_zero() -> None:
    assert not np.any(normalise(np.zeros((3, 3))))
