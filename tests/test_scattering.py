"""The on-disk cache of scattering coefficients: keyed by pixels, written atomically, checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glasses.augment import augment
from glasses.cache_files import CacheWarning
from glasses.config import GlassesConfig, resolve_config
from glasses.models.scatnet import coefficient_count, scattering_transform
from glasses.scattering import (
    augmented_key,
    cache_key,
    cached_augmented_coefficients,
    cached_coefficients,
    compute_coefficients,
    copy_generator,
)

J, L = 2, 4


@pytest.fixture
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 3, 16, 16), dtype=np.uint8)


def test_compute_coefficients_matches_the_transform_on_unit_pixels(pixels) -> None:
    coefficients = compute_coefficients(pixels, J, L, batch_size=2)
    assert coefficients.shape == (5, 3, coefficient_count(J, L), 4, 4)
    assert coefficients.dtype == torch.float32
    expected = scattering_transform(J, L, 16)(torch.from_numpy(pixels).float() / 255)
    torch.testing.assert_close(coefficients, expected)


def test_cache_miss_then_hit_with_identical_tensor(pixels, tmp_path) -> None:
    first = cached_coefficients(pixels, J, L, tmp_path)
    assert first.hit is False
    assert first.path.is_file()
    assert first.path.parent == tmp_path / "scattering"
    second = cached_coefficients(pixels, J, L, tmp_path)
    assert second.hit is True
    assert second.path == first.path
    torch.testing.assert_close(second.coefficients, first.coefficients, rtol=0, atol=0)
    assert sorted(p.name for p in (tmp_path / "scattering").iterdir()) == [
        first.path.name,
        first.path.with_name(first.path.name + ".sha256").name,
    ]


def test_cache_leaves_no_temporary_files(pixels, tmp_path) -> None:
    cached_coefficients(pixels, J, L, tmp_path)
    cached_coefficients(pixels[:2], J, L, tmp_path)
    names = sorted(p.name for p in (tmp_path / "scattering").iterdir())
    assert len(names) == 4  # two entries, each with its checksum
    assert all(name.endswith((".npy", ".sha256")) and ".tmp" not in name for name in names)


def test_a_stored_entry_is_what_is_returned(pixels, tmp_path) -> None:
    entry = cached_coefficients(pixels, J, L, tmp_path)
    np.testing.assert_array_equal(np.load(entry.path), entry.coefficients.numpy())


def test_a_hit_is_memory_mapped_not_read_into_memory(pixels, tmp_path) -> None:
    cached_coefficients(pixels, J, L, tmp_path)
    hit = cached_coefficients(pixels, J, L, tmp_path)
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc here to see the mapping")
    assert str(hit.path) in maps.read_text()  # the file is mapped, its pages read on demand


def test_key_depends_on_pixels_and_parameters(pixels) -> None:
    key = cache_key(pixels, J, L)
    assert key == cache_key(pixels.copy(), J, L)
    changed = pixels.copy()
    changed[0, 0, 0, 0] ^= 1
    assert cache_key(changed, J, L) != key
    assert cache_key(pixels, J, L + 1) != key
    assert cache_key(pixels, J + 1, L) != key
    assert cache_key(pixels[:4], J, L) != key
    # A non-contiguous view hashes like its contiguous copy.
    strided = np.ascontiguousarray(pixels[:, :, ::-1])
    assert cache_key(pixels[:, :, ::-1], J, L) == cache_key(strided, J, L)


def test_different_pixels_get_their_own_entry(pixels, tmp_path) -> None:
    first = cached_coefficients(pixels, J, L, tmp_path)
    changed = pixels.copy()
    changed[1] = 255 - changed[1]
    second = cached_coefficients(changed, J, L, tmp_path)
    assert second.hit is False
    assert second.path != first.path
    assert not torch.allclose(second.coefficients[1], first.coefficients[1])
    torch.testing.assert_close(second.coefficients[0], first.coefficients[0])


def test_non_contiguous_pixels_are_accepted(pixels, tmp_path) -> None:
    channels_last = np.ascontiguousarray(pixels.transpose(0, 2, 3, 1))
    view = channels_last.transpose(0, 3, 1, 2)  # same values as `pixels`, not contiguous
    assert not view.flags["C_CONTIGUOUS"]
    torch.testing.assert_close(
        cached_coefficients(view, J, L, tmp_path).coefficients, compute_coefficients(pixels, J, L)
    )


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_last_coefficient_byte(path: Path) -> None:
    """Change one coefficient in place, leaving a well-formed .npy file."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (truncate, "unreadable"),
        (flip_last_coefficient_byte, "checksum mismatch"),
        (lambda path: path.write_text("not numpy"), "unreadable"),
        (lambda path: path.with_name(path.name + ".sha256").unlink(), "no checksum"),
    ],
)
def test_a_damaged_entry_is_recomputed_with_a_warning_naming_it(
    pixels, tmp_path, damage, reason
) -> None:
    entry = cached_coefficients(pixels, J, L, tmp_path)
    expected = entry.coefficients.clone()  # the damage below rewrites the mapped file in place
    del entry.coefficients
    damage(entry.path)
    with pytest.warns(CacheWarning, match=rf"{entry.path}.*{reason}.*recomputing"):
        again = cached_coefficients(pixels, J, L, tmp_path)
    assert again.hit is False
    torch.testing.assert_close(again.coefficients, expected, rtol=0, atol=0)
    repaired = cached_coefficients(pixels, J, L, tmp_path)  # the entry was rewritten
    assert repaired.hit is True


def test_an_entry_of_the_wrong_shape_is_not_used(pixels, tmp_path) -> None:
    entry = cached_coefficients(pixels, J, L, tmp_path)
    other = cached_coefficients(pixels[:2], J, L, tmp_path)
    entry.path.write_bytes(other.path.read_bytes())  # valid checksum, two rows instead of five
    with pytest.warns(CacheWarning, match="expected float32"):
        again = cached_coefficients(pixels, J, L, tmp_path)
    assert again.coefficients.shape[0] == 5


def augmented(copies: int = 2, orientations: int = L, **overrides) -> GlassesConfig:
    scatnet = {"J": J, "L": orientations, "augmented_copies": copies}
    return resolve_config("tiny", {"scatnet": scatnet, **overrides})


def test_augmented_copies_are_cached_reused_and_follow_the_originals(pixels, tmp_path) -> None:
    plain = cached_coefficients(pixels, J, L, tmp_path).coefficients
    first = cached_augmented_coefficients(pixels, plain, augmented(2), tmp_path)
    assert first.hit is False
    assert first.coefficients.shape == (3 * 5, *plain.shape[1:])
    torch.testing.assert_close(first.coefficients[:5], plain, rtol=0, atol=0)  # copy 0
    second = cached_augmented_coefficients(pixels, plain, augmented(2), tmp_path)
    assert second.hit is True and second.path == first.path
    torch.testing.assert_close(second.coefficients, first.coefficients, rtol=0, atol=0)
    maps = Path("/proc/self/maps")
    assert not maps.exists() or str(second.path) in maps.read_text()  # memory-mapped


def test_copy_c_is_the_cnns_augmentation_from_its_own_generator(pixels, tmp_path) -> None:
    config = augmented(2)
    plain = compute_coefficients(pixels, J, L)
    entry = cached_augmented_coefficients(pixels, plain, config, tmp_path).coefficients
    transform = scattering_transform(J, L, 16)
    for copy in (1, 2):
        images = augment(
            torch.from_numpy(pixels).float() / 255,
            config.augment,
            copy_generator(config.seed, copy),
        )
        torch.testing.assert_close(entry[copy * 5 : (copy + 1) * 5], transform(images))
        assert not torch.allclose(entry[copy * 5 : (copy + 1) * 5], plain)
    assert not torch.allclose(entry[5:10], entry[10:15])  # copies differ from each other


def test_augmented_key_changes_with_anything_that_decides_the_copies(pixels) -> None:
    key = augmented_key(pixels, augmented(2))
    assert key == augmented_key(pixels.copy(), augmented(2))
    changed = pixels.copy()
    changed[0, 0, 0, 0] ^= 1
    others = [
        augmented_key(changed, augmented(2)),
        augmented_key(pixels, augmented(3)),
        augmented_key(pixels, augmented(2, augment={"hflip": 0.0})),
        augmented_key(pixels, augmented(2, seed=7)),
        augmented_key(pixels, augmented(2, orientations=L + 1)),
        cache_key(pixels, J, L),
    ]
    assert len({key, *others}) == len(others) + 1


def test_another_augment_setting_or_copy_count_is_another_entry(pixels, tmp_path) -> None:
    plain = compute_coefficients(pixels, J, L)
    first = cached_augmented_coefficients(pixels, plain, augmented(1), tmp_path)
    more = cached_augmented_coefficients(pixels, plain, augmented(2), tmp_path)
    assert more.hit is False and more.path != first.path and len(more.coefficients) == 15
    # Copy c depends on the seed and c alone: K = 2 extends K = 1.
    torch.testing.assert_close(more.coefficients[:10], first.coefficients, rtol=0, atol=0)
    rotated = augmented(1, augment={"rotation_degrees": 30.0})
    other = cached_augmented_coefficients(pixels, plain, rotated, tmp_path)
    assert other.hit is False and other.path not in (first.path, more.path)
    assert not torch.allclose(other.coefficients[5:], first.coefficients[5:])


def test_a_damaged_augmented_entry_is_recomputed_with_a_warning(pixels, tmp_path) -> None:
    plain = compute_coefficients(pixels, J, L)
    entry = cached_augmented_coefficients(pixels, plain, augmented(1), tmp_path)
    expected = entry.coefficients.clone()
    del entry.coefficients
    flip_last_coefficient_byte(entry.path)
    with pytest.warns(CacheWarning, match=rf"augmented scattering .*{entry.path}.*checksum"):
        again = cached_augmented_coefficients(pixels, plain, augmented(1), tmp_path)
    assert again.hit is False
    torch.testing.assert_close(again.coefficients, expected, rtol=0, atol=0)
