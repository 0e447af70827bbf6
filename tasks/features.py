"""Scattering coefficients for the whole image set, from the on-disk cache when possible."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from glasses.config import GlassesConfig
from glasses.data.reference import DataRef, image_set
from glasses.scattering import cached_augmented_coefficients, cached_coefficients
from glasses.training import resolve_device
from tasks.tracking import client


@task(name="scattering-coefficients", cache_policy=NO_CACHE)
def scattering_coefficients(data: DataRef, config: GlassesConfig, run_id: str) -> DataRef:
    """`data` with its scattering coefficients, computed into the cache on a miss, and with
    their augmented copies when the ScatNet trains on some (`scatnet.augmented_copies`)."""
    pixels, cache_dir = image_set(data).pixels, Path(data.cache_dir)
    device = str(resolve_device(config.runtime.device))
    cached = cached_coefficients(pixels, config.scatnet.J, config.scatnet.L, cache_dir, device)
    tracking = client()
    tracking.set_tag(run_id, "scattering_cache", "hit" if cached.hit else "miss")
    data = data.with_coefficients(cached)
    if config.scatnet.augmented_copies:
        augmented = cached_augmented_coefficients(
            pixels, cached.coefficients, config, cache_dir, device
        )
        tracking.set_tag(run_id, "augmented_scattering_cache", "hit" if augmented.hit else "miss")
        data = data.with_augmented(augmented)
    return data
