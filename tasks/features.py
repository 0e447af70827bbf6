"""Scattering coefficients for the whole image set, from the on-disk cache when possible."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from glasses.config import GlassesConfig
from glasses.data.reference import DataRef, image_set
from glasses.scattering import cached_coefficients
from glasses.training import default_device
from tasks.tracking import client, log_metrics


@task(name="scattering-coefficients", cache_policy=NO_CACHE)
def scattering_coefficients(data: DataRef, config: GlassesConfig, run_id: str) -> DataRef:
    """`data` with its scattering coefficients, computed into the cache on a miss."""
    started = time.perf_counter()
    cached = cached_coefficients(
        image_set(data).pixels,
        config.scatnet.J,
        config.scatnet.L,
        Path(data.cache_dir),
        device=str(default_device()),
    )
    tracking = client()
    tracking.set_tag(run_id, "scattering_cache", "hit" if cached.hit else "miss")
    log_metrics(tracking, run_id, {"scattering_seconds": time.perf_counter() - started})
    return data.with_coefficients(cached)
