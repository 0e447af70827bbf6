"""Scattering coefficients for the whole image set, from the on-disk cache when possible."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from prefect import task
from prefect.cache_policies import NO_CACHE

from glasses.config import GlassesConfig
from glasses.data.images import ImageSet
from glasses.scattering import cached_coefficients
from glasses.training import default_device
from tasks.tracking import client, log_metrics


@task(name="scattering-coefficients", cache_policy=NO_CACHE)
def scattering_coefficients(
    images: ImageSet, config: GlassesConfig, cache_dir: Path, run_id: str
) -> torch.Tensor:
    started = time.perf_counter()
    cached = cached_coefficients(
        images.pixels, config.scatnet.J, config.scatnet.L, cache_dir, device=str(default_device())
    )
    tracking = client()
    tracking.set_tag(run_id, "scattering_cache", "hit" if cached.hit else "miss")
    log_metrics(tracking, run_id, {"scattering_seconds": time.perf_counter() - started})
    return cached.coefficients
