"""The scattering task: the coefficients a run's ScatNet trains on, by reference, with augmented
copies only when the configuration asks for them."""

from __future__ import annotations

import torch

from glasses.config import resolve_config
from glasses.data.reference import augmented_coefficients, coefficients, family_inputs
from mlflow import MlflowClient
from tasks.features import scattering_coefficients
from tasks.runs import start_run
from tasks.tracking import client, experiment_id

TINY = resolve_config("tiny")
COPIES = resolve_config("tiny", {"scatnet": {"augmented_copies": 2}})


def cache_tags(run_id: str) -> dict[str, str]:
    tags = MlflowClient().get_run(run_id).data.tags
    return {k: v for k, v in tags.items() if k.endswith("scattering_cache")}


def test_augmented_copies_are_made_once_and_opened_by_reference(
    mlflow_local, image_arrays, references
) -> None:
    pixels, labels = image_arrays(per_class=3)
    data = references.data(pixels, labels)
    tracking = client()
    run_id = start_run(tracking, experiment_id(tracking), "features", None, {})

    plain = scattering_coefficients.fn(data, TINY, run_id)
    assert plain.augmented is None  # K = 0: the reference (and training inputs) of today
    assert cache_tags(run_id) == {"scattering_cache": "miss"}
    assert family_inputs(plain, "scatnet") is coefficients(plain)

    with_copies = scattering_coefficients.fn(data, COPIES, run_id)
    assert cache_tags(run_id) == {
        "scattering_cache": "hit",
        "augmented_scattering_cache": "miss",
    }
    assert with_copies.coefficients == plain.coefficients
    coefficients.cache_clear(), augmented_coefficients.cache_clear()  # a fresh worker process
    inputs = family_inputs(with_copies, "scatnet")
    assert inputs.shape == (3 * len(pixels), *coefficients(plain).shape[1:])
    torch.testing.assert_close(inputs[: len(pixels)], coefficients(plain), rtol=0, atol=0)
    assert torch.equal(family_inputs(with_copies, "cnn"), torch.from_numpy(pixels))

    again = scattering_coefficients.fn(data, COPIES, run_id)
    assert again == with_copies
    assert cache_tags(run_id)["augmented_scattering_cache"] == "hit"
