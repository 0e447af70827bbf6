"""The CNN, the scattering network and the classifier head they share."""

from glasses.models.cnn import CNN
from glasses.models.head import Classifier, InputNorm, SeededDropout
from glasses.models.scatnet import ScatNet, coefficient_count, scattering_transform

__all__ = [
    "CNN",
    "Classifier",
    "InputNorm",
    "ScatNet",
    "SeededDropout",
    "coefficient_count",
    "scattering_transform",
]
