"""The scattering network: a fixed kymatio `Scattering2D` in front of the CNN's own head.

The wavelet filters never train, so training only needs each image's coefficients, computed once
(see `glasses.scattering`). The registered model still contains the transform, so it takes images
like the CNN does and gradients flow through the scattering for attribution methods.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from kymatio import Scattering2D
from torch import nn

from glasses.config import ScatNetConfig
from glasses.models.head import Classifier
from glasses.models.scattering_backend import VectorisedBackend


def scattering_transform(J: int, L: int, image_size: int) -> Scattering2D:
    """kymatio's torch frontend, built via the top-level import, on `VectorisedBackend` (the
    same values, faster on the CPU).

    `kymatio.torch` also imports the 3-D transform, which breaks with scipy >= 1.17.
    """
    if image_size % (2**J):
        raise ValueError(f"data.image_size {image_size} must be divisible by 2**scatnet.J = {2**J}")
    return Scattering2D(
        J=J, shape=(image_size, image_size), L=L, frontend="torch", backend=VectorisedBackend
    )


def coefficient_count(J: int, L: int) -> int:
    """Order 0, 1 and 2 paths per colour channel: 1 + JL + L^2 J(J-1)/2 (81 at J=2, L=8)."""
    return 1 + J * L + L * L * J * (J - 1) // 2


class ScatteringMemo:
    """The scattering of every image seen, kept while it fits in `budget_bytes`.

    Why: the randomisation check explains the same perturbed images (all of LIME's, about half
    of SHAP's, whose later masks follow the model's outputs) again after every randomised layer
    of the head, and the scattering, which it never randomises, is nearly all of the ScatNet's
    forward cost. Images are kept one by one, not as batches, because SHAP groups its masks
    differently for every model. An image is found by a digest of its bytes and then compared
    element for element, so a hit is exactly the image's scattering; the images not found are
    scattered together (each image's coefficients do not depend on its batch on the CPU:
    tested). Once full it stores nothing more: the cascade revisits images in the order it
    first met them, where evicting the oldest would never hit. Batches that need a gradient
    (Integrated Gradients) are always scattered afresh.
    """

    def __init__(self, scattering: nn.Module, budget_bytes: int) -> None:
        self.scattering = scattering
        self.budget_bytes = budget_bytes
        self.stored_bytes = 0
        self.hits = 0  # images read back
        self._entries: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.requires_grad:
            return self.scattering(images)
        images = images.contiguous()
        keys = [_image_key(image) for image in images]
        found = [self._entries.get(key) for key in keys]
        known = [
            entry is not None and torch.equal(entry[0], image)
            for entry, image in zip(found, images, strict=True)
        ]
        missing = [i for i, hit in enumerate(known) if not hit]
        self.hits += len(images) - len(missing)
        rows = [entry[1] if hit else None for entry, hit in zip(found, known, strict=True)]
        if missing:
            for i, computed in zip(missing, self.scattering(images[missing]), strict=True):
                rows[i] = computed
                self._keep(keys[i], images[i], computed, found[i] is None)
        return torch.stack(rows)

    def _keep(self, key: tuple, image: torch.Tensor, coefficients: torch.Tensor, new: bool) -> None:
        """Stores one image's coefficients if the budget allows; never replaces an entry (a
        digest collision keeps the first image)."""
        size = _bytes(image) + _bytes(coefficients)
        if new and self.stored_bytes + size <= self.budget_bytes:
            self._entries[key] = (image.clone(), coefficients.clone())
            self.stored_bytes += size


def _image_key(image: torch.Tensor) -> tuple:
    data = image.detach().cpu().reshape(-1).view(torch.uint8).numpy()
    digest = hashlib.blake2b(data, digest_size=16).digest()
    return tuple(image.shape), image.dtype, image.device, digest


def _bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


class ScatNet(nn.Module):
    """Scattering → per-coefficient standardisation → shared classifier head."""

    memo: ScatteringMemo | None = None  # set by `reusing_scattering` alone

    def __init__(self, config: ScatNetConfig, image_size: int, n_classes: int = 2):
        super().__init__()
        self.image_size = image_size  # travels with the registered model, for `glasses explain`
        self.config = config  # and this, so `glasses.inference` can rebuild it from weights
        self.scattering = scattering_transform(config.J, config.L, image_size)
        side = image_size // 2**config.J
        shape = (3, coefficient_count(config.J, config.L), side, side)
        # Fitted on training coefficients (`fit_standardisation`): raw scattering coefficients
        # span orders of magnitude across paths, which stalls plain SGD.
        self.register_buffer("coefficient_mean", torch.zeros(shape))
        self.register_buffer("coefficient_std", torch.ones(shape))
        in_features = int(torch.tensor(shape).prod())
        self.head = Classifier(in_features, config.head.hidden, config.head.dropout, n_classes)

    def coefficients(self, images: torch.Tensor) -> torch.Tensor:
        return self.scattering(images) if self.memo is None else self.memo(images)

    @contextmanager
    def reusing_scattering(self, budget_bytes: int) -> Iterator[ScatteringMemo]:
        """Within the block, a batch scattered once is read back (`ScatteringMemo`)."""
        self.memo = ScatteringMemo(self.scattering, budget_bytes)
        try:
            yield self.memo
        finally:
            self.memo = None

    def classify(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Logits from precomputed coefficients, the path training takes."""
        return self.head((coefficients - self.coefficient_mean) / self.coefficient_std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.coefficients(images))

    def fit_standardisation(
        self, coefficients: torch.Tensor, rows: torch.Tensor | None = None, chunk: int = 256
    ) -> None:
        """Mean and standard deviation of the training `rows` of `coefficients` (all rows by
        default), accumulated chunk by chunk in float64, so a memory-mapped cache is read once
        and never copied whole."""
        index = torch.arange(len(coefficients)) if rows is None else rows
        total = torch.zeros(self.coefficient_mean.shape, dtype=torch.float64)
        squares = torch.zeros_like(total)
        for start in range(0, len(index), chunk):
            part = coefficients[index[start : start + chunk]].double()
            total += part.sum(dim=0)
            squares += (part * part).sum(dim=0)
        n = len(index)
        mean = total / n
        variance = (squares - n * mean * mean).clamp_min(0) / max(n - 1, 1)
        self.coefficient_mean.copy_(mean.float())
        self.coefficient_std.copy_(variance.sqrt().float().clamp_min(1e-6))


def fixed_parts_reused(model: nn.Module, budget_mb: int) -> AbstractContextManager:
    """While open, what `model` computes before its first randomised layer is computed once per
    input image, in up to `budget_mb` MB: the ScatNet's scattering (`ScatteringMemo`); the CNN
    learns every layer, so there it changes nothing. Here, beside the model, so that the
    randomisation check (`glasses.xai.correctness`) needs no test of a model's class."""
    if isinstance(model, ScatNet) and budget_mb > 0:
        return model.reusing_scattering(budget_mb * 2**20)
    return nullcontext()
