"""What a model family is, in one place: its network, settings, inputs and registered name.

Training, registration, serving, figures and statistics look a family up here instead of
branching on its name, so a third family is one more entry in `SPECS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel
from torch import nn

from glasses.config import CNNConfig, GlassesConfig, OptimiserConfig, ScatNetConfig
from glasses.models.cnn import CNN
from glasses.models.scatnet import ScatNet

Family = Literal["cnn", "scatnet"]
FAMILIES: tuple[Family, ...] = ("cnn", "scatnet")
InputKind = Literal["pixels", "coefficients"]


@dataclass(frozen=True)
class FamilySpec:
    name: Family
    title: str  # how figures and tables name it
    registered_name: str  # its name in the MLflow Model Registry
    inputs: InputKind  # what its training reads: uint8 pixels, or cached scattering coefficients
    network: type[nn.Module]  # built as network(settings, image_size)
    settings_model: type[BaseModel]  # the section of `GlassesConfig` named `name`

    def settings(self, config: GlassesConfig) -> BaseModel:
        return getattr(config, self.name)

    def optimiser(self, config: GlassesConfig) -> OptimiserConfig:
        return getattr(config, self.name).optimiser

    def build(self, settings: BaseModel, image_size: int) -> nn.Module:
        return self.network(settings, image_size)


SPECS: dict[Family, FamilySpec] = {
    "cnn": FamilySpec("cnn", "CNN", "glasses-cnn", "pixels", CNN, CNNConfig),
    "scatnet": FamilySpec(
        "scatnet", "ScatNet", "glasses-scatnet", "coefficients", ScatNet, ScatNetConfig
    ),
}


def family_of(model: nn.Module) -> FamilySpec:
    """The family whose network `model` is."""
    for spec in SPECS.values():
        if isinstance(model, spec.network):
            return spec
    raise TypeError(f"{type(model).__name__} is not a network of any family in glasses.families")
