"""Profiles, overrides and strictness of the one configuration model."""

from __future__ import annotations

import pydantic
import pytest

from glasses.config import (
    PROFILES,
    ConfigError,
    GlassesConfig,
    OptimiserConfig,
    resolve_config,
)


def test_paper_profile_matches_the_seed_study() -> None:
    config = resolve_config("paper")
    assert config.profile == "paper"
    assert config.data.image_size == 128
    assert config.data.max_images is None
    assert config.split.folds == 5
    assert config.split.test_size == pytest.approx(0.2)

    cnn = config.cnn
    # The seed's 50 epochs of 3148 images in batches of 16 are about 10 000 steps.
    assert (cnn.optimiser.steps, cnn.optimiser.batch_size) == (10_000, 16)
    assert cnn.optimiser.patience > 0
    assert cnn.optimiser.lr == pytest.approx(0.01)
    assert cnn.optimiser.momentum == pytest.approx(0.5)
    assert cnn.channels == (32, 32, 64)
    assert cnn.kernels == (11, 9, 3)
    assert cnn.head.hidden == (256, 32)

    scatnet = config.scatnet
    assert (scatnet.J, scatnet.L) == (2, 8)
    assert scatnet.head.hidden == (1024, 1024)
    assert scatnet.optimiser.lr == pytest.approx(0.005)
    assert scatnet.optimiser.momentum == 0.0
    assert (scatnet.optimiser.batch_size, scatnet.optimiser.steps) == (128, 2_500)
    assert config.sweep.repeats >= 10  # what a verdict at the paper's scale needs


def test_paper_is_the_model_default() -> None:
    assert resolve_config("paper") == GlassesConfig()


def test_quick_profile_applies_its_values_over_the_paper() -> None:
    config = resolve_config("quick")
    quick = PROFILES["quick"]
    assert config.profile == "quick"
    assert (config.data.image_size, config.data.max_images) == (64, 1200)
    assert config.split.folds == 3
    assert config.augment.vflip == 0.0
    assert config.cnn.kernels == (5, 5, 3)
    assert config.cnn.optimiser.model_dump() == {
        **OptimiserConfig().model_dump(),
        **quick["cnn"]["optimiser"],
    }
    assert config.scatnet.optimiser.steps == quick["scatnet"]["optimiser"]["steps"]
    assert config.sweep.repeats >= 5
    # Fields the profile leaves alone keep the paper's values.
    assert (config.scatnet.J, config.scatnet.L) == (2, 8)
    assert config.cnn.head.dropout == pytest.approx(0.1)
    assert config.augment.rotation_degrees == pytest.approx(10.0)
    assert config.seed == 42


def test_tiny_profile_is_small() -> None:
    config = resolve_config("tiny")
    assert config.profile == "tiny"
    assert config.data.image_size == 32
    assert config.split.folds == 2
    assert config.cnn.optimiser.steps <= 20
    assert config.scatnet.optimiser.steps <= 20
    assert (config.scatnet.J, config.scatnet.L) == (2, 4)
    assert config.validation.min_per_class == 5


def test_overrides_merge_deeply() -> None:
    quick = resolve_config("quick")
    config = resolve_config("quick", {"cnn": {"optimiser": {"steps": 3}}, "seed": 7})
    assert config.cnn.optimiser.steps == 3
    assert config.seed == 7
    # Siblings at every level survive: the override is merged, not substituted.
    assert config.cnn.optimiser.batch_size == quick.cnn.optimiser.batch_size == 32
    assert config.cnn.optimiser.lr == quick.cnn.optimiser.lr
    assert config.cnn.kernels == quick.cnn.kernels
    assert config.cnn.head == quick.cnn.head
    assert config.scatnet == quick.scatnet
    assert config.data == quick.data


def test_overrides_do_not_leak_into_profiles() -> None:
    before = repr(PROFILES["quick"])
    steps = resolve_config("quick").cnn.optimiser.steps
    resolve_config("quick", {"cnn": {"optimiser": {"steps": steps + 1}}})
    assert repr(PROFILES["quick"]) == before
    assert resolve_config("quick").cnn.optimiser.steps == steps


def test_profile_field_cannot_be_overridden_away() -> None:
    assert resolve_config("tiny", {"profile": "paper"}).profile == "tiny"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"cnn": {"optimiser": {"epoch": 3}}}, "epoch"),
        ({"scatnet": {"j": 3}}, "j"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_unknown_key_is_rejected_by_name(overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config("tiny", overrides)
    assert f".{key}: Extra inputs are not permitted" in str(caught.value) or str(
        caught.value
    ).startswith(f"configuration: {key}: Extra inputs")
    assert "\n" not in str(caught.value)


def test_invalid_value_is_rejected_in_one_line_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="data.image_size: Input should be greater than or"):
        resolve_config("tiny", {"data": {"image_size": 8}})
    with pytest.raises(ConfigError, match="synthetic_glasses"):
        resolve_config("tiny", {"data": {"synthetic_glasses": 60}})


def test_unknown_profile_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown profile 'huge'") as caught:
        resolve_config("huge")
    for name in ("paper", "quick", "tiny"):
        assert name in str(caught.value)


def test_config_is_frozen() -> None:
    config = resolve_config("tiny")
    with pytest.raises(pydantic.ValidationError):
        config.seed = 1  # type: ignore[misc]


def test_flat_gives_dotted_string_keys() -> None:
    flat = resolve_config("paper").flat()
    assert flat["cnn.optimiser.steps"] == "10000"
    assert flat["scatnet.head.hidden"] == "[1024, 1024]"
    assert flat["data.image_size"] == "128"
    assert flat["profile"] == "paper"
    assert flat["data.max_images"] == "None"
    assert all(isinstance(value, str) for value in flat.values())
    # Only leaves: no key is a prefix section of another.
    assert "cnn" not in flat and "cnn.optimiser" not in flat
    assert len(flat) == len(set(flat))
    assert len(flat) > 30


def test_every_setting_says_what_it_is_for() -> None:
    """The Prefect UI and `glasses config` readers see these descriptions."""
    from pydantic import BaseModel

    def undescribed(model: type[BaseModel], prefix: str = "") -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            kind = field.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                missing += undescribed(kind, f"{prefix}{name}.")
            elif not field.description:
                missing.append(prefix + name)
        return missing

    assert undescribed(GlassesConfig) == []


def test_randomisation_check_has_enough_images_and_stays_within_the_sample() -> None:
    assert resolve_config("paper").xai.randomisation_images >= 30
    assert resolve_config("quick").xai.randomisation_images >= 10
    for profile in ("paper", "quick", "tiny"):
        xai = resolve_config(profile).xai
        assert xai.randomisation_images <= 2 * xai.images_per_class
    with pytest.raises(ConfigError, match=r"randomisation_images \(5\).*images_per_class \(2\)"):
        resolve_config("tiny", {"xai": {"randomisation_images": 5}})


def test_typed_overrides_resolve_like_the_mapping_they_came_from() -> None:
    """The flows take `Overrides` (a form in the Prefect UI): only the fields set count."""
    from glasses.config import Overrides

    mapping = {"cnn": {"optimiser": {"steps": 3}}, "data": {"max_images": None}}
    typed = Overrides.model_validate(mapping)
    assert resolve_config("quick", typed) == resolve_config("quick", mapping)
    assert resolve_config("quick", Overrides()) == resolve_config("quick")
    with pytest.raises(pydantic.ValidationError, match="optimizer"):
        Overrides.model_validate({"cnn": {"optimizer": {"steps": 3}}})
    assert "profile" not in Overrides.model_fields  # the profile is its own parameter


def test_promotion_margins_default_to_any_gain_in_a_study_and_one_point_in_a_rerun():
    config = resolve_config("tiny")
    assert (config.promotion.margin, config.retrain.margin) == (0.0, 0.01)
    with pytest.raises(ConfigError, match="promotion.margin"):
        resolve_config("tiny", {"promotion": {"margin": -0.1}})
