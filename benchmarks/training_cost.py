"""Milliseconds per training image of each family: the project's own training, the seed study's
plain loop, and the GEMM floor, measured in one process so the three compare like for like.

The project's number is `glasses.fitting.train_on` as the pipeline calls it (the CNN's
augmentation, batch gathering and running scores included); the plain loop is the seed's
`model.train(); zero_grad; cross_entropy; backward; step` on NCHW float32 batches already in
memory, with the model and optimiser settings the project builds. The ScatNet is timed on
cached coefficients (its head): that is what its training runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.floor import floor_ms, training_flops
from glasses.config import GlassesConfig, OptimiserConfig, resolve_config
from glasses.families import SPECS, Family
from glasses.fitting import build_model, train_on
from glasses.models.cnn import CNN
from glasses.models.scatnet import ScatNet, coefficient_count

# Steps per timed window (about a second each at `paper` sizes), windows after the first (which
# pays for first-touch allocations and is left out), and turns of plain loop and project.
WINDOW_STEPS = {"cnn": 8, "scatnet": 2}
WINDOWS = 4
ROUNDS = 2


@dataclass(frozen=True)
class Cost:
    family: Family
    gflop_per_image: float  # forward + backward, convolutions and matrix products
    floor_ms: float  # at the fastest GEMM rate measured in the same run
    project_ms: float
    plain_loop_ms: float

    @property
    def floor_ratio(self) -> float:
        """Project time over the floor: 1 is the machine's limit (goal: <= 1.3)."""
        return self.project_ms / self.floor_ms

    @property
    def speedup(self) -> float:
        """Plain-loop time over project time (goal for the CNN: >= 1.5)."""
        return self.plain_loop_ms / self.project_ms


def random_inputs(
    family: Family, config: GlassesConfig, rows: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """What the family trains on, at the profile's sizes: uint8 pixels (CNN) or scattering
    coefficients (ScatNet). Random values: the cost of a dense step does not depend on them."""
    generator = torch.Generator().manual_seed(seed)
    size = config.data.image_size
    labels = torch.randint(0, 2, (rows,), generator=generator)
    if SPECS[family].inputs == "pixels":
        shape = (rows, 3, size, size)
        return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8), labels
    side = size // 2**config.scatnet.J
    shape = (rows, 3, coefficient_count(config.scatnet.J, config.scatnet.L), side, side)
    return torch.randn(shape, generator=generator), labels


def per_image_ms(stamps: list[tuple[int, float]], batch_size: int) -> float:
    """Milliseconds per image of the fastest window between (step, seconds) stamps; the first
    stamp closes the warm-up window, which is left out. The fastest, as for the GEMM rate: on a
    shared machine it is the window least disturbed by other processes."""
    if len(stamps) < 2:
        raise ValueError("need at least two (step, seconds) stamps to time one window")
    return min(
        (t1 - t0) / ((s1 - s0) * batch_size) * 1e3
        for (s0, t0), (s1, t1) in zip(stamps, stamps[1:], strict=False)
    )


def timed_config(profile: str) -> GlassesConfig:
    """The profile, with checks (the pipeline's own timestamps) every `WINDOW_STEPS` steps."""
    return resolve_config(
        profile,
        {family: {"optimiser": {"check_every": steps}} for family, steps in WINDOW_STEPS.items()},
    )


def project_ms(family: Family, config: GlassesConfig) -> float:
    """ms/image of the pipeline's own training call, timed between its checks (`timed_config`)."""
    settings = SPECS[family].optimiser(config)
    inputs, labels = random_inputs(family, config, rows=2 * settings.batch_size)
    stamps: list[tuple[int, float]] = []
    train_on(
        family,
        config,
        inputs,
        labels,
        np.arange(len(inputs)),
        seed=0,
        steps=settings.check_every * (WINDOWS + 1),
        on_check=lambda check: stamps.append((check.step, time.perf_counter())),
    )
    return per_image_ms(stamps, settings.batch_size)


@dataclass(frozen=True)
class PlainLoop:
    """The family's model as the project builds it, and one float32 NCHW batch of its input."""

    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]  # the CNN itself, the ScatNet's head
    inputs: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def build(cls, family: Family, config: GlassesConfig) -> PlainLoop:
        model = build_model(family, config, seed=0).train()
        batch = SPECS[family].optimiser(config).batch_size
        inputs, labels = random_inputs(family, config, rows=batch)
        if isinstance(model, ScatNet):
            model.fit_standardisation(inputs)
            return cls(model, model.classify, inputs, labels)
        assert isinstance(model, CNN)
        return cls(model, nchw(model), inputs.float() / 255, labels)

    def flops_per_image(self) -> float:
        return training_flops(self.forward, self.inputs, self.labels)

    def ms_per_image(self, settings: OptimiserConfig) -> float:
        """The seed's loop, nothing but the model and SGD, timed every `check_every` steps."""
        optimiser = torch.optim.SGD(
            self.model.parameters(), lr=settings.lr, momentum=settings.momentum
        )
        stamps = [(0, time.perf_counter())]
        for step in range(1, settings.check_every * (WINDOWS + 1) + 1):
            optimiser.zero_grad()
            loss = F.cross_entropy(self.forward(self.inputs), self.labels)
            loss.backward()
            optimiser.step()
            if step % settings.check_every == 0:
                stamps.append((step, time.perf_counter()))
        return per_image_ms(stamps[1:], len(self.inputs))


def nchw(model: CNN) -> Callable[[torch.Tensor], torch.Tensor]:
    """The seed's CNN: the same layers and weights, run in NCHW instead of channels-last."""
    model.features.to(memory_format=torch.contiguous_format)
    return lambda images: model.head(model.features(images))


def measure(family: Family, config: GlassesConfig, gemm_gflops: float) -> Cost:
    """FLOPs, then the plain loop and the project's training in turn, `ROUNDS` times each, the
    fastest of each kept: taking turns gives both the same chance of a quiet machine."""
    loop = PlainLoop.build(family, config)
    flops = loop.flops_per_image()
    plain, project = [], []
    for _ in range(ROUNDS):
        plain.append(loop.ms_per_image(SPECS[family].optimiser(config)))
        project.append(project_ms(family, config))
    return Cost(family, flops / 1e9, floor_ms(flops, gemm_gflops), min(project), min(plain))
