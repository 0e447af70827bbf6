"""One configuration model for the whole study, with named profiles.

Every run logs the fully resolved configuration, so a profile is only a starting point: any field
can be overridden by a nested mapping, and the result is validated again.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    """Unknown keys are typos, not extensions: reject them with the key's name."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    image_size: int = Field(128, ge=16, le=512)
    synthetic_count: int = Field(4920, ge=8)
    synthetic_glasses: int = Field(2769, ge=4)
    max_images: int | None = Field(
        None, ge=8, description="Stratified subsample of the data set, for quick profiles."
    )

    @model_validator(mode="after")
    def _glasses_fit(self) -> DataConfig:
        if self.synthetic_glasses >= self.synthetic_count:
            raise ValueError("data.synthetic_glasses must be smaller than data.synthetic_count")
        return self


class SplitConfig(_Strict):
    test_size: float = Field(0.2, gt=0.0, lt=0.5)
    folds: int = Field(5, ge=2, le=20)


class ValidationConfig(_Strict):
    min_width: int = Field(32, ge=1)
    min_height: int = Field(32, ge=1)
    min_per_class: int = Field(10, ge=1)
    min_class_share: float = Field(0.1, ge=0.0, lt=0.5)


class AugmentConfig(_Strict):
    """Seed study's augmentations, applied on the fly to training folds only."""

    rotation_degrees: float = Field(10.0, ge=0.0, le=180.0)
    hflip: float = Field(0.5, ge=0.0, le=1.0)
    vflip: float = Field(0.5, ge=0.0, le=1.0)
    brightness: float = Field(0.2, ge=0.0)
    contrast: float = Field(0.2, ge=0.0)
    saturation: float = Field(0.2, ge=0.0)
    hue: float = Field(0.02, ge=0.0, le=0.5)


class OptimiserConfig(_Strict):
    lr: float = Field(0.01, gt=0.0)
    momentum: float = Field(0.5, ge=0.0, lt=1.0)
    batch_size: int = Field(16, ge=1)
    epochs: int = Field(50, ge=1)


class HeadConfig(_Strict):
    hidden: tuple[int, ...] = (256, 32)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)


class CNNConfig(_Strict):
    channels: tuple[int, int, int] = (32, 32, 64)
    kernels: tuple[int, int, int] = (11, 9, 3)
    head: HeadConfig = HeadConfig()
    optimiser: OptimiserConfig = OptimiserConfig()


class ScatNetConfig(_Strict):
    J: int = Field(2, ge=1, le=6)
    L: int = Field(8, ge=1, le=16)
    head: HeadConfig = HeadConfig(hidden=(1024, 1024), dropout=0.1)
    optimiser: OptimiserConfig = OptimiserConfig(lr=0.005, momentum=0.0, batch_size=128, epochs=100)


class RuntimeConfig(_Strict):
    task_runner: Literal["threads", "sequential"] = "threads"
    workers: int = Field(2, ge=1, le=64, description="Concurrent fold tasks.")
    retries: int = Field(1, ge=0, le=5)


class SweepConfig(_Strict):
    """The shrinking-dataset sweep: where does the ScatNet beat the CNN?"""

    enabled: bool = True
    sizes: tuple[int, ...] | None = Field(
        None, description="Training-set sizes, descending; None: geometric from all to `smallest`."
    )
    smallest: int = Field(78, ge=4, description="The seed study's 46 + 32 images.")
    steps: int = Field(6, ge=2, le=20)
    repeats: int = Field(5, ge=1, le=50)
    folds: int = Field(5, ge=2, le=20, description="Upper bound; fewer for small subsets.")


XAIMethod = Literal["ig", "ig_random", "ig_captum", "ig_captum_random", "lime", "shap"]
XAI_METHODS: tuple[XAIMethod, ...] = (
    "ig",
    "ig_random",
    "ig_captum",
    "ig_captum_random",
    "lime",
    "shap",
)


class XAIConfig(_Strict):
    """Explanations of both champions. `ig*`: Integrated Gradients from scratch / via Captum,
    with the black or the seeded random baseline."""

    enabled: bool = True
    samples: int = Field(100, ge=1, description="Test images for the statistics.")
    sample_methods: tuple[XAIMethod, ...] = XAI_METHODS
    named_images: tuple[str, ...] = Field(
        (), description="File names of the three named test images; empty: chosen automatically."
    )
    ig_steps: int = Field(50, ge=2)
    ig_method: Literal["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"] = (
        "riemann_trapezoid"
    )
    ig_batch_size: int = Field(64, ge=1)
    lime_samples: int = Field(1000, ge=10)
    shap_max_evals: int = Field(500, ge=10, description="Model evaluations per SHAP image.")
    deletion_steps: int = Field(20, ge=2)
    randomisation_images: int = Field(
        30, ge=1, description="The randomisation check runs on this many of the sample's images."
    )
    randomisation_threshold: float = Field(0.5, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _randomisation_within_sample(self) -> XAIConfig:
        if self.randomisation_images > self.samples:
            raise ValueError(
                f"xai.randomisation_images ({self.randomisation_images}) must not exceed "
                f"xai.samples ({self.samples}): the check runs on the sample's first images"
            )
        return self


class RetrainConfig(_Strict):
    """Scheduled re-runs on new data: when to retrain and when a challenger wins."""

    schedule: str = Field("0 3 * * *", description="Cron of the scheduled deployment (paused).")
    drift_share: float = Field(
        0.5, gt=0.0, le=1.0, description="Share of drifted columns that means the data drifted."
    )
    min_new_share: float = Field(
        0.2, ge=0.0, description="Retrain without drift once new images reach this share."
    )
    batch_test_share: float = Field(0.2, gt=0.0, lt=0.5)
    margin: float = Field(
        0.01, ge=0.0, description="Accuracy a challenger must gain over the champion."
    )


class GlassesConfig(_Strict):
    profile: str = "paper"
    seed: int = 42
    data: DataConfig = DataConfig()
    split: SplitConfig = SplitConfig()
    validation: ValidationConfig = ValidationConfig()
    augment: AugmentConfig = AugmentConfig()
    cnn: CNNConfig = CNNConfig()
    scatnet: ScatNetConfig = ScatNetConfig()
    sweep: SweepConfig = SweepConfig()
    xai: XAIConfig = XAIConfig()
    retrain: RetrainConfig = RetrainConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    def flat(self) -> dict[str, str]:
        """Dotted keys for MLflow params, which cannot hold nested mappings."""
        return dict(_flatten(self.model_dump(mode="json")))


def _flatten(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(_flatten(value, f"{name}."))
        else:
            items.append((name, str(value)))
    return items


PROFILES: dict[str, dict[str, Any]] = {
    # The seed study's scale: 128x128, all 4920 images, 5 folds, 50 CNN / 100 ScatNet epochs.
    "paper": {},
    # The demo default: the whole flow within 10 minutes on a 2-core machine.
    "quick": {
        "data": {"image_size": 64, "max_images": 1200},
        "split": {"folds": 3},
        "augment": {"vflip": 0.0},
        "cnn": {
            "channels": (16, 32, 32),
            "kernels": (5, 5, 3),
            "head": {"hidden": (128, 32)},
            "optimiser": {"epochs": 15, "batch_size": 32, "lr": 0.01, "momentum": 0.9},
        },
        "scatnet": {
            "head": {"hidden": (128, 64)},
            "optimiser": {"epochs": 12, "batch_size": 32, "lr": 0.01, "momentum": 0.9},
        },
        "sweep": {"sizes": (300, 150, 78), "repeats": 3, "folds": 2},
        "xai": {
            "samples": 10,
            "sample_methods": ("ig", "ig_captum", "lime", "shap"),
            "ig_steps": 32,
            "lime_samples": 150,
            "shap_max_evals": 100,
            "deletion_steps": 10,
            "randomisation_images": 10,
        },
    },
    # Seconds-long runs for the test suite: tiny images, two folds, one or two epochs.
    "tiny": {
        "data": {
            "image_size": 32,
            "max_images": 60,
            "synthetic_count": 60,
            "synthetic_glasses": 34,
        },
        "split": {"folds": 2},
        "validation": {"min_per_class": 5},
        "cnn": {
            "channels": (4, 8, 8),
            "kernels": (5, 3, 3),
            "head": {"hidden": (16, 8)},
            "optimiser": {"epochs": 2, "batch_size": 8, "lr": 0.05, "momentum": 0.9},
        },
        "scatnet": {
            "J": 2,
            "L": 4,
            "head": {"hidden": (16, 8)},
            "optimiser": {"epochs": 2, "batch_size": 8, "lr": 0.05, "momentum": 0.9},
        },
        "sweep": {"sizes": (36, 20), "repeats": 2, "folds": 2},
        "xai": {
            "samples": 4,
            "ig_steps": 8,
            "ig_batch_size": 16,
            "lime_samples": 40,
            "shap_max_evals": 40,
            "deletion_steps": 5,
            "randomisation_images": 2,
        },
    },
}

ProfileName = Literal["paper", "quick", "tiny"]


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_config(profile: str, overrides: dict[str, Any] | None = None) -> GlassesConfig:
    """The profile's values, then the caller's overrides, validated as one model."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    tree = _merge(GlassesConfig().model_dump(), PROFILES[profile])
    tree = _merge(tree, overrides or {})
    tree["profile"] = profile
    return GlassesConfig.model_validate(tree)
