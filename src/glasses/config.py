"""One configuration model for the whole study, with named profiles.

Every run logs the fully resolved configuration, so a profile is only a starting point: any field
can be overridden by a nested mapping, and the result is validated again.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator


class _Strict(BaseModel):
    """Unknown keys are typos, not extensions: reject them with the key's name."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    image_size: int = Field(
        128,
        ge=16,
        le=512,
        description="Side in pixels every image is resized to.",
    )
    synthetic_count: int = Field(
        4920,
        ge=8,
        description="Images the built-in synthetic generator makes.",
    )
    synthetic_glasses: int = Field(
        2769,
        ge=4,
        description="How many of the synthetic images wear glasses.",
    )
    max_images: int | None = Field(
        None, ge=8, description="Stratified subsample of the data set, for quick profiles."
    )

    @model_validator(mode="after")
    def _glasses_fit(self) -> DataConfig:
        if self.synthetic_glasses >= self.synthetic_count:
            raise ValueError("data.synthetic_glasses must be smaller than data.synthetic_count")
        return self


class SplitConfig(_Strict):
    test_size: float = Field(0.2, gt=0.0, lt=0.5, description="Share of images held out for test.")
    folds: int = Field(5, ge=2, le=20, description="Cross-validation folds of the training split.")
    outer: int = Field(
        2,
        ge=1,
        le=10,
        description="Repetitions of the outer k-fold over all images (k = `folds`): the study's "
        "test scores and sweep come from these splits, each image a test image once per "
        "repetition.",
    )
    inner_share: float = Field(
        0.2,
        gt=0.0,
        lt=0.5,
        description="Share of a training set held out to choose the step count (early stopping).",
    )
    fold_curves: bool = Field(
        True,
        description="Score each fold's validation rows at every check, for the held-out curve of "
        "the fold figures: never used to choose or stop; 13 % (CNN) to 20 % (ScatNet) more fold "
        "CPU time at quick sizes.",
    )


class ValidationConfig(_Strict):
    min_width: int = Field(32, ge=1, description="Smallest accepted image width in pixels.")
    min_height: int = Field(32, ge=1, description="Smallest accepted image height in pixels.")
    min_per_class: int = Field(10, ge=1, description="Fewest images a class may have.")
    min_class_share: float = Field(
        0.1,
        ge=0.0,
        lt=0.5,
        description="Smallest share of the data a class may have.",
    )


class AugmentConfig(_Strict):
    """Seed study's augmentations, applied on the fly to training folds only."""

    rotation_degrees: float = Field(
        10.0,
        ge=0.0,
        le=180.0,
        description="Largest random rotation of a CNN training image.",
    )
    hflip: float = Field(0.5, ge=0.0, le=1.0, description="Probability of a horizontal flip.")
    vflip: float = Field(0.5, ge=0.0, le=1.0, description="Probability of a vertical flip.")
    brightness: float = Field(0.2, ge=0.0, description="Colour jitter: brightness range.")
    contrast: float = Field(0.2, ge=0.0, description="Colour jitter: contrast range.")
    saturation: float = Field(0.2, ge=0.0, description="Colour jitter: saturation range.")
    hue: float = Field(0.02, ge=0.0, le=0.5, description="Colour jitter: hue range.")


class OptimiserConfig(_Strict):
    """SGD whose budget is counted in optimiser steps, not epochs, so that every training-set
    size gets the same optimisation effort (docs/decisions/0004-training-budget.md)."""

    lr: float = Field(0.01, gt=0.0, description="SGD learning rate.")
    momentum: float = Field(0.5, ge=0.0, lt=1.0, description="SGD momentum.")
    batch_size: int = Field(16, ge=1, description="Images per optimiser step.")
    steps: int = Field(
        10_000, ge=1, description="Most optimiser steps: the budget, equal for every data size."
    )
    check_every: int = Field(
        200, ge=1, description="Steps between checks of training and inner-validation scores."
    )
    patience: int = Field(
        10,
        ge=0,
        description="Checks without a lower inner-validation loss before stopping early; "
        "0 trains the whole budget on all rows, with no inner validation.",
    )


class HeadConfig(_Strict):
    hidden: tuple[int, ...] = Field((256, 32), description="Widths of the hidden layers.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout before the last layer.")


class CNNConfig(_Strict):
    channels: tuple[int, int, int] = Field((32, 32, 64), description="Channels of the 3 blocks.")
    kernels: tuple[int, int, int] = Field((11, 9, 3), description="Kernel sizes of the 3 blocks.")
    head: HeadConfig = HeadConfig()
    optimiser: OptimiserConfig = OptimiserConfig()


class ScatNetConfig(_Strict):
    J: int = Field(
        2,
        ge=1,
        le=6,
        description="Scales of the wavelet filter bank (the image shrinks by 2**J).",
    )
    L: int = Field(8, ge=1, le=16, description="Orientations per scale.")
    augmented_copies: int = Field(
        0,
        ge=0,
        le=16,
        description="Augmented copies of every image (the CNN's augmentation) whose coefficients "
        "are cached for ScatNet training; 0: the un-augmented images only.",
    )
    head: HeadConfig = HeadConfig(hidden=(1024, 1024), dropout=0.1)
    optimiser: OptimiserConfig = OptimiserConfig(
        lr=0.005, momentum=0.0, batch_size=128, steps=2_500, check_every=50
    )


class RuntimeConfig(_Strict):
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="Where models train and predict: auto takes CUDA when torch sees a GPU.",
    )
    precision: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="Matrix products and convolutions of training in bf16 (autocast; weights and "
        "updates stay float32): for GPUs with bf16 units; CPUs without them run slower.",
    )
    stack_memory_mb: int = Field(
        2048,
        ge=0,
        description="ScatNet trainings on the same coefficients run as one stack of heads while "
        "their first layers' weights fit in this many MB (`quick`: 30 MB each, `paper`: 1 GB); "
        "0: one at a time.",
    )
    task_runner: Literal["threads", "sequential", "dask"] = Field(
        "threads",
        description="How concurrent tasks run: a thread pool, one at a time, or on a Dask cluster.",
    )
    workers: int = Field(
        2,
        ge=1,
        le=64,
        description="Concurrent tasks: threads, or the local Dask cluster's worker processes.",
    )
    dask_address: str = Field(
        "",
        description="Scheduler of an existing Dask cluster (tcp://host:8786); empty: a local "
        "cluster of `workers` processes. Its workers need the cache folder at the same path.",
    )
    resume: bool = Field(
        True,
        description="Reuse finished folds, refits, sweep points and explanations of earlier "
        "runs (same settings, data and code) from the cache folder.",
    )
    retries: int = Field(
        1,
        ge=0,
        le=5,
        description="Retries of a failed fold, sweep point or explanation task.",
    )
    abandoned_after_hours: float = Field(
        24,
        gt=0,
        description="A RUNNING MLflow run from another host this old is marked KILLED on start.",
    )
    server_start_seconds: float = Field(
        600,
        gt=0,
        description="How long `glasses run` waits for its temporary Prefect server to start, "
        "including behind other first runs that create the same database (a start took over "
        "2 min at load 20 on 2 cores).",
    )
    progress_seconds: float = Field(
        50,
        gt=0,
        description="A stage that logged no progress line for this long logs `still running`, "
        "so the watched run's log never goes quiet for a minute.",
    )
    health_timeout_seconds: float = Field(
        30,
        gt=0,
        description="How long a health check of the MLflow or Prefect server may take before "
        "the server counts as down; a stopped server refuses at once whatever this is.",
    )


class SweepConfig(_Strict):
    """The shrinking-dataset sweep: where does the ScatNet beat the CNN?"""

    enabled: bool = Field(True, description="Run the shrinking-dataset sweep.")
    sizes: tuple[int, ...] | None = Field(
        None, description="Training-set sizes, descending; None: geometric from all to `smallest`."
    )
    smallest: int = Field(
        20,
        ge=4,
        description="Default sizes end here: below the seed study's 78, where it claimed the "
        "ScatNet's advantage.",
    )
    min_per_class: int = Field(
        5, ge=2, description="Sizes whose draws would give a class fewer images are dropped."
    )
    steps: int = Field(
        6,
        ge=2,
        le=20,
        description="Default sizes: how many, from all training images down to `smallest`.",
    )
    repeats: int = Field(
        10,
        ge=1,
        le=100,
        description="Seeded subsets drawn per size, spread round-robin over the outer splits.",
    )
    matched: bool = Field(
        False,
        description="Train the ScatNet with the CNN's head widths and optimiser in the sweep, so "
        "the families differ only in their features (and the CNN's augmentation).",
    )
    budget_factors: tuple[float, ...] = Field(
        (0.5, 2.0),
        description="Step-budget multipliers (e.g. 0.5, 2) re-run at `budget_sizes`: whether the "
        "sign of ScatNet − CNN depends on how long they train.",
    )
    budget_sizes: tuple[int, ...] | None = Field(
        None, description="Sizes of the budget check; None: the smallest and the largest size."
    )
    budget_repeats: int = Field(
        5, ge=1, le=100, description="Draws per size of the budget check (the sweep's first)."
    )
    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="Family-wise error rate (Holm).")
    resamples: int = Field(
        2000, ge=100, description="Bootstrap resamples of outer splits, repeats and test people."
    )


# The names of the attribution methods of `glasses.xai.methods.METHODS`, which checks that it
# registers exactly these, in this order.
XAIMethod = Literal["ig", "ig_random", "ig_captum", "ig_captum_random", "lime", "shap"]


class XAIConfig(_Strict):
    """Explanations of both champions. `ig*`: Integrated Gradients from scratch / via Captum,
    with the black or the seeded random baseline."""

    enabled: bool = Field(True, description="Explain both models.")
    images_per_class: int = Field(
        50,
        ge=1,
        description="Test images of each class for the statistics: a seeded draw, classes "
        "interleaved (fewer where the test split has fewer).",
    )
    sample_methods: tuple[XAIMethod, ...] = Field(
        get_args(XAIMethod),
        description="Methods run on the whole sample, not only the named images.",
    )
    named_images: tuple[str, ...] = Field(
        (), description="File names of the three named test images; empty: chosen automatically."
    )
    ig_steps: int = Field(50, ge=2, description="Integration steps of Integrated Gradients.")
    ig_method: Literal["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"] = (
        Field("riemann_trapezoid", description="Quadrature rule of IG, as Captum names it.")
    )
    ig_batch_size: int = Field(64, ge=1, description="Interpolated images per forward pass of IG.")
    ig_dtype: Literal["float32", "float64"] = Field(
        "float32", description="Precision of both IG implementations (scratch and Captum)."
    )
    lime_samples: int = Field(1000, ge=10, description="Perturbed images per LIME explanation.")
    shap_max_evals: int = Field(500, ge=10, description="Model evaluations per SHAP image.")
    deletion_steps: int = Field(20, ge=2, description="Points of the deletion curve.")
    batch_size: int = Field(
        256,
        ge=1,
        description="Images per forward pass of LIME and of the deletion curves (a paper-size "
        "ScatNet's 256 peak at about 2 GB; SHAP keeps 64: its batches decide which masks it "
        "evaluates; IG: `ig_batch_size`).",
    )
    deletion_baseline: Literal["blur", "mean"] = Field(
        "blur",
        description="What a deleted pixel becomes: the image blurred, or the training images' "
        "mean; no attribution method uses either (black would favour IG, LIME and SHAP).",
    )
    randomisation_images: int = Field(
        30, ge=1, description="The randomisation check runs on this many of the sample's images."
    )
    scattering_memory_mb: int = Field(
        1024,
        ge=0,
        description="Memory for the ScatNet's scattering of the images the randomisation check "
        "explains at every step, scattered once while they fit (quick: 450 MB per check); "
        "0: scattered again at every step. The maps are the same either way.",
    )

    @model_validator(mode="after")
    def _randomisation_within_sample(self) -> XAIConfig:
        if self.randomisation_images > 2 * self.images_per_class:
            raise ValueError(
                f"xai.randomisation_images ({self.randomisation_images}) must not exceed twice "
                f"xai.images_per_class ({self.images_per_class}): the check runs on the "
                "sample's first images"
            )
        return self


class PromotionConfig(_Strict):
    """When a study run's registered challenger replaces the champion (`glasses.promotion`)."""

    margin: float = Field(
        0.0,
        ge=0.0,
        description="Balanced accuracy a study run's challenger must gain over the champion; "
        "0: any gain, equal balanced accuracy settled by macro-F1 (re-runs: `retrain.margin`).",
    )


class RetrainConfig(_Strict):
    """Scheduled re-runs on new data: when to retrain and when a challenger wins."""

    schedule: str = Field("0 3 * * *", description="Cron of the scheduled deployment (paused).")
    drift_share: float = Field(
        0.5, gt=0.0, le=1.0, description="Share of drifted columns that means the data drifted."
    )
    min_new_share: float = Field(
        0.2, ge=0.0, description="Retrain without drift once new images reach this share."
    )
    batch_test_share: float = Field(
        0.2,
        gt=0.0,
        lt=0.5,
        description="Share of a new batch held out for test.",
    )
    margin: float = Field(
        0.01,
        ge=0.0,
        description="Balanced accuracy a re-run's challenger must gain over the champion.",
    )


class GlassesConfig(_Strict):
    profile: str = Field("paper", description="The profile these values started from.")
    seed: int = Field(42, description="Seed of every split, draw and initialisation.")
    data: DataConfig = DataConfig()
    split: SplitConfig = SplitConfig()
    validation: ValidationConfig = ValidationConfig()
    augment: AugmentConfig = AugmentConfig()
    cnn: CNNConfig = CNNConfig()
    scatnet: ScatNetConfig = ScatNetConfig()
    sweep: SweepConfig = SweepConfig()
    xai: XAIConfig = XAIConfig()
    promotion: PromotionConfig = PromotionConfig()
    retrain: RetrainConfig = RetrainConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    def matched(self) -> GlassesConfig:
        """The ScatNet with the CNN's head widths, dropout and optimiser: the sweep's controlled
        comparison, in which the families differ only in their features (and augmentation)."""
        scatnet = self.scatnet.model_copy(
            update={"head": self.cnn.head, "optimiser": self.cnn.optimiser}
        )
        return self.model_copy(update={"scatnet": scatnet})

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


# Both families of `tiny` train alike: a dozen steps, early stopping after two flat checks.
_TINY_OPTIMISER = {
    "steps": 12,
    "check_every": 4,
    "patience": 2,
    "batch_size": 8,
    "lr": 0.05,
    "momentum": 0.9,
}

PROFILES: dict[str, dict[str, Any]] = {
    # The seed study's scale: 128x128, all 4920 images, 5 folds; budgets of about its 50 CNN /
    # 100 ScatNet epochs (10 000 / 2 500 steps), with early stopping; the budget checked at half
    # and twice that at the sweep's smallest and largest size.
    "paper": {},
    # The demo default: the whole flow in about 12 minutes on a slow 2-core host (README,
    # "Measured quick run"); issue 24 is to bring it back under 10.
    "quick": {
        "data": {"image_size": 64, "max_images": 1200},
        # Three repetitions of the outer 3-fold: nine outer splits, so the sweep's 7 draws per
        # size sit on 7 splits, whose sign-flip floor (2 / 2**7) lets Holm at 0.05 over 3 sizes
        # reject at all (docs/decisions/0009-outer-splits.md).
        "split": {"folds": 3, "outer": 3},
        "augment": {"vflip": 0.0},
        "cnn": {
            "channels": (16, 32, 32),
            "kernels": (5, 5, 3),
            "head": {"hidden": (128, 32)},
            "optimiser": {
                "steps": 600,
                "check_every": 25,
                "patience": 0,
                "batch_size": 32,
                "lr": 0.01,
                "momentum": 0.9,
            },
        },
        "scatnet": {
            "head": {"hidden": (128, 64)},
            "optimiser": {
                "steps": 300,
                "check_every": 25,
                "patience": 0,
                "batch_size": 32,
                "lr": 0.01,
                "momentum": 0.9,
            },
        },
        # All training images down to 20 in 3 sizes, 7 draws each, one per outer split; the
        # budget checked at the smallest size.
        "sweep": {
            "steps": 3,
            "repeats": 7,
            "budget_factors": (0.5, 2.0),
            "budget_sizes": (20,),
            "budget_repeats": 2,
        },
        "xai": {
            "images_per_class": 5,
            "sample_methods": ("ig", "ig_captum", "lime", "shap"),
            "ig_steps": 32,
            "lime_samples": 150,
            "shap_max_evals": 100,
            "deletion_steps": 10,
            "randomisation_images": 10,
        },
    },
    # Seconds-long runs for the test suite: tiny images, two folds, a dozen steps.
    "tiny": {
        "data": {
            "image_size": 32,
            "max_images": 60,
            "synthetic_count": 60,
            "synthetic_glasses": 34,
        },
        "split": {"folds": 2, "outer": 1},
        "validation": {"min_per_class": 5},
        "cnn": {
            "channels": (4, 8, 8),
            "kernels": (5, 3, 3),
            "head": {"hidden": (16, 8)},
            "optimiser": _TINY_OPTIMISER,
        },
        "scatnet": {
            "J": 2,
            "L": 4,
            "head": {"hidden": (16, 8)},
            "optimiser": _TINY_OPTIMISER,
        },
        "sweep": {"sizes": (36, 20), "repeats": 2, "resamples": 200, "budget_factors": ()},
        "xai": {
            "images_per_class": 2,
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


def _partial(model: type[BaseModel], leave_out: tuple[str, ...] = ()) -> type[BaseModel]:
    """The same fields, each optional and unset by default, sections nested alike: what a caller
    may override. Bounds are checked when the overrides are resolved (`resolve_config`)."""
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name in leave_out:
            continue
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, _Strict):
            kind = _partial(kind)
        fields[name] = (kind | None, Field(None, description=field.description))
    return create_model(
        f"{model.__name__.removesuffix('Config')}Overrides", __base__=_Strict, **fields
    )


# The flows' `overrides` parameter: typed, so the Prefect UI renders it as a form of the settings.
Overrides = _partial(GlassesConfig, leave_out=("profile",))


class ConfigError(ValueError):
    """Configuration values that do not validate, said in one line: each field and what is
    wrong with it."""


def resolve_config(
    profile: str, overrides: dict[str, Any] | BaseModel | None = None
) -> GlassesConfig:
    """The profile's values, then the caller's overrides (a nested mapping, or `Overrides` with
    only the fields that were set), validated as one model."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    if isinstance(overrides, BaseModel):
        overrides = overrides.model_dump(exclude_unset=True)
    tree = _merge(GlassesConfig().model_dump(), PROFILES[profile])
    tree = _merge(tree, overrides or {})
    tree["profile"] = profile
    try:
        return GlassesConfig.model_validate(tree)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']} (got {item['input']!r})"[
                :300
            ]
            for item in error.errors()
        )
        raise ConfigError(f"configuration: {problems}") from None
