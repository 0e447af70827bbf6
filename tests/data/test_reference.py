"""Data references: what a task in another process opens is what the flow stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glasses.config import resolve_config
from glasses.data.reference import DataUnavailable, coefficients, family_inputs, image_set
from glasses.scattering import cached_coefficients, compute_coefficients

TINY = resolve_config("tiny")


def test_a_reference_rebuilds_the_same_inputs(image_arrays, references) -> None:
    pixels, labels = image_arrays(per_class=3)
    data = references.data(pixels, labels)
    J, L = TINY.scatnet.J, TINY.scatnet.L
    data = data.with_coefficients(cached_coefficients(pixels, J, L, Path(data.cache_dir)))
    image_set.cache_clear(), coefficients.cache_clear()  # as a fresh worker process
    np.testing.assert_array_equal(family_inputs(data, "cnn").numpy(), pixels)
    np.testing.assert_array_equal(image_set(data).labels, labels)
    torch.testing.assert_close(
        family_inputs(data, "scatnet"), compute_coefficients(pixels, J, L), rtol=0, atol=0
    )
    assert references.data(pixels, labels) == data.__class__(
        data.cache_dir, data.images, data.shape
    )


def test_a_missing_or_damaged_entry_names_the_file_and_the_fix(image_arrays, references) -> None:
    pixels, labels = image_arrays(per_class=2)
    data = references.data(pixels, labels)
    (entry,) = (Path(data.cache_dir) / "images").glob("*.npy")
    entry.write_bytes(entry.read_bytes()[:-10])
    image_set.cache_clear()
    with pytest.raises(DataUnavailable, match=rf"{entry} is damaged .*GLASSES_CACHE_DIR"):
        image_set(data)
    entry.unlink()
    with pytest.raises(DataUnavailable, match=rf"{entry} is missing"):
        image_set(data)
    references.data(pixels, labels)  # the flow's load step writes it again
    np.testing.assert_array_equal(image_set(data).pixels, pixels)
