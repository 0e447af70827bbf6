"""What a model family is, in one place: its network, settings, inputs (and how its network reads
them), and registered name.

Training, registration, serving, figures and statistics look a family up here instead of
branching on its name, so a third family is one more entry in `SPECS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel
from torch import nn

from glasses.config import CNNConfig, GlassesConfig, OptimiserConfig, ScatNetConfig
from glasses.models.cnn import CNN
from glasses.models.scatnet import ScatNet
from glasses.training import Classify, pixels_to_input

Family = Literal["cnn", "scatnet"]
FAMILIES: tuple[Family, ...] = ("cnn", "scatnet")
# The study's question, as every difference states it: CONTRAST[0] − CONTRAST[1] (ScatNet − CNN),
# so a positive difference puts the first family ahead.
CONTRAST: tuple[Family, Family] = ("scatnet", "cnn")
InputKind = Literal["pixels", "coefficients"]
Standardisation = Callable[[nn.Module, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class FamilySpec:
    """A family's `inputs` are what it is trained and cross-validated on; `to_input` and
    `classifier` say how the network reads them, so the same logits come out as from its
    `forward` on the images (which every registered model takes)."""

    name: Family
    title: str  # how figures and tables name it
    registered_name: str  # its name in the MLflow Model Registry
    inputs: InputKind  # what its training reads: uint8 pixels, or cached scattering coefficients
    network: type[nn.Module]  # built as network(settings, image_size)
    settings_model: type[BaseModel]  # the section of `GlassesConfig` named `name`
    to_input: Callable[[torch.Tensor], torch.Tensor]  # a batch of `inputs` as `classifier` reads it
    classifier: Callable[[nn.Module], Classify]  # the part of the network that reads `inputs`
    # Fitted on the training rows of `inputs` before training: (model, inputs, rows).
    standardisation: Standardisation | None = None
    # Its trainings on the same inputs run together as one stack of heads (`glasses.heads`).
    stacked: bool = False
    # One image's forward pass against the CNN's, at `quick` sizes (the ScatNet's scattering:
    # 20-30x, `python -m benchmarks.xai_parts`): orders the explanation tasks, longest first.
    forward_cost: float = 1.0

    def settings(self, config: GlassesConfig) -> BaseModel:
        return getattr(config, self.name)

    def optimiser(self, config: GlassesConfig) -> OptimiserConfig:
        return getattr(config, self.name).optimiser

    def params(self, config: GlassesConfig) -> dict[str, str]:
        """What a family run logs as parameters, so MLflow's "compare runs" sets the families
        side by side: its section of `config` (`optimiser.steps`, `head.hidden`, …) without
        the family prefix, and the image size it was trained at."""
        prefix = f"{self.name}."
        own = {k.removeprefix(prefix): v for k, v in config.flat().items() if k.startswith(prefix)}
        return {**own, "image_size": str(config.data.image_size)}

    def build(self, settings: BaseModel, image_size: int) -> nn.Module:
        return self.network(settings, image_size)

    @property
    def augments_batches(self) -> bool:
        """Whether training augments every batch afresh: pixels can be; coefficients are
        computed before training, so their augmented copies (if any) are fixed in the cache."""
        return self.inputs == "pixels"

    def fit_standardisation(
        self, model: nn.Module, inputs: torch.Tensor, rows: torch.Tensor
    ) -> None:
        """Fits the model's standardisation of `inputs` on the training `rows`, where the
        family has one."""
        if self.standardisation is not None:
            self.standardisation(model, inputs, rows)


def _as_stored(batch: torch.Tensor) -> torch.Tensor:
    return batch


def _whole_network(model: nn.Module) -> Classify:
    return model


def _head_on_coefficients(model: ScatNet) -> Classify:
    return model.classify


SPECS: dict[Family, FamilySpec] = {
    "cnn": FamilySpec(
        "cnn", "CNN", "glasses-cnn", "pixels", CNN, CNNConfig,
        to_input=pixels_to_input,
        classifier=_whole_network,
    ),
    "scatnet": FamilySpec(
        "scatnet", "ScatNet", "glasses-scatnet", "coefficients", ScatNet, ScatNetConfig,
        to_input=_as_stored,
        classifier=_head_on_coefficients,
        standardisation=ScatNet.fit_standardisation,
        stacked=True,
        forward_cost=25.0,
    ),
}  # fmt: skip


def family_of(model: nn.Module) -> FamilySpec:
    """The family whose network `model` is."""
    for spec in SPECS.values():
        if isinstance(model, spec.network):
            return spec
    raise TypeError(f"{type(model).__name__} is not a network of any family in glasses.families")
