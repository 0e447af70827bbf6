"""LIME on SLICO superpixels (about `N_SEGMENTS` at any image size), turned into a per-pixel map
(why: docs/decisions/0003).

Explained score: the PROBABILITY of the target class (LIME fits a linear surrogate to the
classifier's probabilities), unlike IG and SHAP, which explain the target logit. Hidden
superpixels are black, the same "absence" as the black IG baseline and the SHAP masker. `seed`
fixes which superpixels each perturbation hides; one explainer per image makes each map
independent of its batch.
"""

from __future__ import annotations

import numpy as np
import torch
from lime.lime_image import ImageExplanation, LimeImageExplainer
from skimage.segmentation import slic
from torch import nn

from glasses.xai.integrated_gradients import Targets, as_targets

N_SEGMENTS = 50


def segment(image: np.ndarray) -> np.ndarray:
    """SLIC superpixels of an H x W x 3 image, numbered 0..k-1.

    LIME treats segment ids as the columns 0..k-1 of its perturbation matrix, so a gap or a
    start at 1 (skimage's default) would silently leave a superpixel never hidden.
    """
    labels = slic(image, n_segments=N_SEGMENTS, slic_zero=True, start_label=0)
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


def model_outputs(model: nn.Module, batch: np.ndarray) -> torch.Tensor:
    """Logits of a B x H x W x 3 numpy batch (floats in [0, 1], or uint8) as the model takes it.

    Shared with the SHAP explainer, which also hands the model channels-last numpy images.
    """
    parameter = next(model.parameters())
    pixels = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
    if pixels.dtype == torch.uint8:
        pixels = pixels / 255
    pixels = pixels.to(device=parameter.device, dtype=parameter.dtype).contiguous()
    with torch.no_grad():
        return model(pixels).cpu()


class _VectorisedLime(LimeImageExplainer):
    """LIME's image explainer with its perturbation loop vectorised.

    The stock `data_labels` deep-copies the image and rebuilds each mask segment by segment in
    Python, and draws a tqdm bar per image into the flow's logs; this one makes the same random
    draws and the same images, with one fancy-indexing step per batch.
    """

    def data_labels(
        self,
        image: np.ndarray,
        fudged_image: np.ndarray,
        segments: np.ndarray,
        classifier_fn,
        num_samples: int,
        batch_size: int = 10,
    ) -> tuple[np.ndarray, np.ndarray]:
        n_features = np.unique(segments).shape[0]
        data = self.random_state.randint(0, 2, num_samples * n_features)
        data = data.reshape((num_samples, n_features))
        data[0, :] = 1
        labels = []
        for start in range(0, num_samples, batch_size):
            keep = data[start : start + batch_size][:, segments].astype(bool)[..., None]
            labels.append(classifier_fn(np.where(keep, image, fudged_image)))
        return data, np.concatenate(labels)


def superpixel_map(explanation: ImageExplanation, target: int) -> np.ndarray:
    """H x W map giving every pixel its superpixel's surrogate weight for `target`."""
    weights = np.zeros(explanation.segments.max() + 1)
    for superpixel, weight in explanation.local_exp[target]:
        weights[superpixel] = weight
    return weights[explanation.segments]


def lime_attributions(
    model: nn.Module,
    images: torch.Tensor,
    targets: Targets,
    *,
    num_samples: int,
    seed: int,
    batch_size: int,
) -> np.ndarray:
    """N x H x W LIME maps; `batch_size` perturbed images go through the model at once (the
    perturbations are drawn before, so it changes nothing but the model's rounding)."""
    labels = as_targets(targets, len(images), images.device).tolist()
    pixels = images.detach().permute(0, 2, 3, 1).cpu().double().numpy()

    def probabilities(batch: np.ndarray) -> np.ndarray:
        return torch.softmax(model_outputs(model, batch), dim=1).double().numpy()

    maps = []
    for image, target in zip(pixels, labels, strict=True):
        explainer = _VectorisedLime(random_state=seed, feature_selection="none")
        explanation = explainer.explain_instance(
            image,
            probabilities,
            labels=(target,),
            hide_color=0,
            top_labels=None,
            num_samples=num_samples,
            batch_size=batch_size,
            segmentation_fn=segment,
            random_seed=seed,
        )
        maps.append(superpixel_map(explanation, target))
    return np.stack(maps)
