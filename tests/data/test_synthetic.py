"""The embedded synthetic data set: exact classes, masks, determinism, caching, learnability."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score

from glasses.data import synthetic
from glasses.data.faces import GLASSES_KINDS, NO_GLASSES, SUNGLASSES, plan_shots
from glasses.data.rendering import render
from glasses.data.synthetic import SYNTHETIC_COLUMNS, generate_synthetic

COUNT, N_GLASSES, SIZE, SEED = 40, 24, 32, 7
EYE_ROWS = (0.33, 0.6)  # the band that holds eyes, brows' lower edge and glasses at any pose
EYE_COLS = (0.2, 0.8)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("synthetic") / "small"
    labels = generate_synthetic(root, COUNT, N_GLASSES, SIZE, SEED)
    return root, pd.read_csv(labels, keep_default_na=False)


@pytest.fixture(scope="module")
def larger(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """200 grey 32 px images with labels and persons, for the learnability checks."""
    root = tmp_path_factory.mktemp("synthetic") / "larger"
    table = pd.read_csv(generate_synthetic(root, 200, 110, 32, 3), keep_default_na=False)
    images = np.stack(
        [np.asarray(Image.open(root / p).convert("L"), dtype=float) for p in table.path]
    )
    return images, table.label.to_numpy(), table.group.to_numpy()


def file_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_labels_table_has_exact_classes_and_columns(small: tuple[Path, pd.DataFrame]) -> None:
    root, table = small
    assert list(table.columns) == SYNTHETIC_COLUMNS
    assert (table.label == 1).sum() == N_GLASSES
    assert (table.label == 0).sum() == COUNT - N_GLASSES
    assert set(table.label_name[table.label == 1]) == {"glasses"}
    assert set(table.label_name[table.label == 0]) == {"no_glasses"}
    assert set(table.glasses_kind[table.label == 0]) == {NO_GLASSES}
    assert set(table.glasses_kind[table.label == 1]) <= set(GLASSES_KINDS)
    assert table.path.is_unique
    assert (root / "params.json").is_file()


def test_images_are_rgb_at_requested_size(small: tuple[Path, pd.DataFrame]) -> None:
    root, table = small
    for path in table.path:
        with Image.open(root / path) as image:
            assert image.mode == "RGB"
            assert image.size == (SIZE, SIZE)


def test_masks_are_binary_non_empty_and_around_the_eyes(small: tuple[Path, pd.DataFrame]) -> None:
    root, table = small
    assert (table.mask_path == "").tolist() == (table.label == 0).tolist()
    assert sorted(p.name for p in (root / "masks").iterdir()) == sorted(
        Path(p).name for p in table.mask_path[table.label == 1]
    )
    for mask_path in table.mask_path[table.label == 1]:
        with Image.open(root / mask_path) as image:
            assert image.mode == "L"
            mask = np.asarray(image)
        assert set(np.unique(mask)) == {0, 255}
        rows, cols = np.nonzero(mask)
        assert rows.min() >= 0.2 * SIZE and rows.max() <= 0.75 * SIZE
        assert 0.3 * SIZE <= rows.mean() <= 0.6 * SIZE
        assert 0.3 * SIZE <= cols.mean() <= 0.7 * SIZE


def test_both_sunglasses_and_clear_lenses_occur(small: tuple[Path, pd.DataFrame]) -> None:
    kinds = set(small[1].glasses_kind)
    assert SUNGLASSES in kinds
    assert kinds - {SUNGLASSES, NO_GLASSES}


def test_every_person_appears_several_times(small: tuple[Path, pd.DataFrame]) -> None:
    sizes = small[1].group.value_counts()
    assert sizes.min() >= 2
    assert len(sizes) >= 3


def test_same_seed_gives_identical_bytes(small: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_synthetic(again, COUNT, N_GLASSES, SIZE, SEED)
    assert file_bytes(again) == file_bytes(small[0])


def test_different_seed_gives_different_images(
    small: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    other = tmp_path / "other"
    generate_synthetic(other, COUNT, N_GLASSES, SIZE, SEED + 1)
    first = (small[0] / "images" / "00000.png").read_bytes()
    assert (other / "images" / "00000.png").read_bytes() != first


def test_second_call_reuses_the_data_set(
    small: tuple[Path, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = small
    watched = [root / "labels.csv", root / "images" / "00000.png", root / "params.json"]
    before = [p.stat().st_mtime_ns for p in watched]

    def must_not_run(folder: Path, params: dict[str, int]) -> None:
        raise AssertionError("the cached data set was generated again")

    monkeypatch.setattr(synthetic, "_write_dataset", must_not_run)
    labels = generate_synthetic(root, COUNT, N_GLASSES, SIZE, SEED)
    assert labels == root / "labels.csv"
    assert [p.stat().st_mtime_ns for p in watched] == before


def test_other_parameters_in_an_existing_folder_are_refused(
    small: tuple[Path, pd.DataFrame],
) -> None:
    root, _ = small
    with pytest.raises(ValueError, match=str(root)):
        generate_synthetic(root, COUNT + 1, N_GLASSES, SIZE, SEED)


def test_a_foreign_non_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(ValueError, match="photos"):
        generate_synthetic(tmp_path / "photos", COUNT, N_GLASSES, SIZE, SEED)
    assert (tmp_path / "photos" / "holiday.jpg").read_bytes() == b"not ours"


def test_impossible_class_counts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_glasses"):
        generate_synthetic(tmp_path / "bad", 10, 11, SIZE, SEED)


def test_an_interrupted_run_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(folder: Path, params: dict[str, int]) -> None:
        (folder / "images").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_write_dataset", crash)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic(tmp_path / "set", COUNT, N_GLASSES, SIZE, SEED)
    assert list(tmp_path.iterdir()) == []


def test_racing_processes_agree_on_one_data_set(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        runs = [
            pool.submit(generate_synthetic, root, COUNT, N_GLASSES, SIZE, SEED) for _ in range(2)
        ]
        assert [run.result() for run in runs] == [root / "labels.csv"] * 2
    reference = tmp_path / "reference"
    generate_synthetic(reference, COUNT, N_GLASSES, SIZE, SEED)
    assert file_bytes(root) == file_bytes(reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference", "shared"]


def eye_band(images: np.ndarray) -> np.ndarray:
    size = images.shape[1]
    rows = slice(int(EYE_ROWS[0] * size), int(EYE_ROWS[1] * size))
    cols = slice(int(EYE_COLS[0] * size), int(EYE_COLS[1] * size))
    return images[:, rows, cols]


def test_glasses_change_the_masked_pixels_and_nothing_else() -> None:
    shots = plan_shots(np.random.default_rng(11), 24, 24)
    changes = []
    for shot in shots:
        worn, mask = render(shot, 64, np.random.default_rng(0))
        bare, _ = render(replace(shot, eyewear=None, kind=NO_GLASSES), 64, np.random.default_rng(0))
        diff = np.abs(np.asarray(worn, dtype=int) - np.asarray(bare, dtype=int)).max(axis=2)
        inside = np.asarray(mask) > 0
        # Edge pixels less than half covered by the glasses fall just outside the binary mask.
        assert diff[~binary_dilation(inside, np.ones((3, 3)))].max() == 0
        changes.append(diff[inside].mean())
    assert min(changes) > 5
    assert np.mean(changes) > 20


def test_edges_in_the_eye_band_are_learnable(
    larger: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    images, labels, groups = larger
    band = eye_band(images) / 255.0
    edges = np.concatenate(
        [np.abs(np.diff(band, axis=1)).reshape(len(band), -1),
         np.abs(np.diff(band, axis=2)).reshape(len(band), -1)],
        axis=1,
    )  # fmt: skip
    model = LogisticRegression(max_iter=3000)
    accuracy = cross_val_score(model, edges, labels, cv=GroupKFold(4), groups=groups).mean()
    assert accuracy > 0.65


def test_eye_band_darkness_alone_does_not_separate_the_classes(
    larger: tuple[np.ndarray, np.ndarray],
) -> None:
    images, labels, groups = larger
    darkness = 255.0 - eye_band(images).mean(axis=(1, 2))
    feature = ((darkness - darkness.mean()) / darkness.std())[:, None]
    model = LogisticRegression()
    accuracy = cross_val_score(model, feature, labels, cv=GroupKFold(4), groups=groups).mean()
    assert accuracy < 0.95
