"""On-the-fly augmentation: bounded, seeded by its own generator, and exact when switched off."""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as TF

from glasses.augment import augment, grayscale, shift_hue
from glasses.config import AugmentConfig

OFF = AugmentConfig(
    rotation_degrees=0.0,
    hflip=0.0,
    vflip=0.0,
    brightness=0.0,
    contrast=0.0,
    saturation=0.0,
    hue=0.0,
)


def batch(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shape_and_range_with_default_magnitudes() -> None:
    images = batch()
    strong = AugmentConfig(brightness=0.9, contrast=0.9, saturation=0.9, hue=0.3)
    for config in (AugmentConfig(), strong):
        output = augment(images.clone(), config, generator(1))
        assert output.shape == images.shape
        assert output.dtype == images.dtype
        assert output.min() >= 0.0 and output.max() <= 1.0
        assert not torch.allclose(output, images)


def test_same_seed_same_output_different_seed_different() -> None:
    images = batch()
    config = AugmentConfig()
    first = augment(images.clone(), config, generator(5))
    again = augment(images.clone(), config, generator(5))
    other = augment(images.clone(), config, generator(6))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, other)


def test_draws_only_from_the_given_generator() -> None:
    images = batch()
    torch.manual_seed(0)
    first = augment(images.clone(), AugmentConfig(), generator(2))
    torch.manual_seed(123)  # the global generator must not matter
    again = augment(images.clone(), AugmentConfig(), generator(2))
    torch.testing.assert_close(first, again, rtol=0, atol=0)


def test_everything_off_is_the_identity() -> None:
    images = batch()
    output = augment(images.clone(), OFF, generator(0))
    torch.testing.assert_close(output, images, rtol=0, atol=1e-6)


def test_hflip_alone_flips_horizontally() -> None:
    images = batch()
    config = OFF.model_copy(update={"hflip": 1.0})
    output = augment(images.clone(), config, generator(0))
    torch.testing.assert_close(output, images.flip(3), rtol=0, atol=1e-6)


def test_vflip_alone_flips_vertically() -> None:
    images = batch()
    config = OFF.model_copy(update={"vflip": 1.0})
    output = augment(images.clone(), config, generator(0))
    torch.testing.assert_close(output, images.flip(2), rtol=0, atol=1e-6)


def test_rotation_keeps_the_centre_and_fills_corners_black() -> None:
    images = torch.ones(4, 3, 17, 17)
    config = OFF.model_copy(update={"rotation_degrees": 45.0})
    output = augment(images, config, generator(3))
    centre = output[:, :, 8, 8]
    torch.testing.assert_close(centre, torch.ones_like(centre), rtol=0, atol=1e-5)
    # At least one image is rotated far enough to pull black into a corner.
    assert output[:, :, 0, 0].min() < 0.5


def test_brightness_scales_images() -> None:
    images = torch.full((64, 3, 4, 4), 0.5)
    config = OFF.model_copy(update={"brightness": 0.2})
    output = augment(images, config, generator(0))
    per_image = output.mean(dim=(1, 2, 3))
    assert per_image.min() >= 0.4 - 1e-6 and per_image.max() <= 0.6 + 1e-6
    assert per_image.std() > 0.01


def test_input_batch_is_not_modified() -> None:
    images = batch()
    before = images.clone()
    augment(images, OFF.model_copy(update={"hflip": 1.0}), generator(0))
    torch.testing.assert_close(images, before, rtol=0, atol=0)


def test_grayscale_is_torchvisions_rgb_to_grayscale() -> None:
    images = batch(4, seed=5)
    torch.testing.assert_close(
        grayscale(images), TF.rgb_to_grayscale(images, num_output_channels=3), rtol=0, atol=0
    )


def test_shift_hue_is_torchvisions_adjust_hue_per_image() -> None:
    images = batch(8, seed=4)
    images[0] = 0.5  # grey: no hue to turn
    images[1, :, :2] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)  # pure red, on the seam
    images[2, 1] = images[2, 0]  # red = green: ties between the largest channels
    shifts = torch.linspace(-0.5, 0.5, 8)
    expected = torch.stack(
        [TF.adjust_hue(image, float(shift)) for image, shift in zip(images, shifts, strict=True)]
    )
    torch.testing.assert_close(shift_hue(images, shifts), expected, rtol=0, atol=1e-5)


def test_contrast_scales_about_the_brightened_mean() -> None:
    images = batch(32, seed=7) * 0.5 + 0.25  # no clamping at these magnitudes
    config = OFF.model_copy(update={"brightness": 0.2, "contrast": 0.2})
    output = augment(images, config, generator(9))
    draws = generator(9)
    torch.rand(32, generator=draws)  # rotation (off), then the two flips (off)
    torch.rand(32, generator=draws)
    torch.rand(32, generator=draws)
    brightness = (1 + (torch.rand(32, generator=draws) * 2 - 1) * 0.2).view(-1, 1, 1, 1)
    contrast = (1 + (torch.rand(32, generator=draws) * 2 - 1) * 0.2).view(-1, 1, 1, 1)
    bright = images * brightness
    mean = bright.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(output, mean + (bright - mean) * contrast, rtol=0, atol=1e-6)
