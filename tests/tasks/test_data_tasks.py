"""Data tasks, called through `.fn`: load once, split with logged membership, validate as a gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glasses.config import resolve_config
from glasses.data.images import ImageSet
from glasses.data.reference import DataRef, image_set
from glasses.data.splits import Split, make_split
from glasses.validation import DataValidationError
from mlflow import MlflowClient
from tasks.data import load_images, split_images, validate_images
from tasks.runs import start_run
from tasks.tracking import client, experiment_id


def new_run(name: str = "data") -> str:
    tracking = client()
    return start_run(tracking, experiment_id(tracking), name, None, {"test": name})


def artifact_paths(run_id: str, folder: str | None = None) -> set[str]:
    return {a.path for a in MlflowClient().list_artifacts(run_id, folder)}


def test_load_images_from_labels_csv(csv_data, tiny_config, cache_dir, unchanged) -> None:
    check = unchanged(csv_data.root)
    data = load_images.fn(str(csv_data.csv), tiny_config, cache_dir)
    images = image_set(data)
    assert images.pixels.shape == (len(csv_data.table), 3, 32, 32)
    assert images.pixels.dtype == np.uint8
    # Rows come in content order (sorted by sha256), each still with its own label and group.
    assert images.manifest["sha256"].is_monotonic_increasing
    expected = csv_data.table.assign(
        path=[str((csv_data.root / p).resolve()) for p in csv_data.table["path"]]
    ).set_index("path")
    by_path = images.manifest.set_index("path")
    np.testing.assert_array_equal(by_path["label"], expected.loc[by_path.index, "label"])
    assert by_path["group"].tolist() == expected.loc[by_path.index, "group"].astype(str).tolist()
    assert images.manifest["readable"].all()
    # Label 1 carries the bright bar: the decoded pixels are the files' pixels.
    bright = images.pixels[:, :, 13:19, 3:29].mean(axis=(1, 2, 3))
    assert (bright[images.labels == 1] > 150).all() and (bright[images.labels == 0] < 60).all()
    check()
    # The decoded images, for tasks in other processes: nothing else (a CSV source is not copied).
    assert {p.parent.name for p in cache_dir.rglob("*") if p.is_file()} == {"images"}
    image_set.cache_clear()  # as a fresh worker process opens it
    np.testing.assert_array_equal(image_set(data).pixels, images.pixels)
    pd.testing.assert_frame_equal(image_set(data).manifest, images.manifest)


def test_load_images_resizes_and_subsamples(folder_data, tmp_path, unchanged) -> None:
    root, expected = folder_data
    config = resolve_config("tiny", {"data": {"image_size": 16, "max_images": 8}})
    check = unchanged(root)
    data = load_images.fn(str(root), config, tmp_path / "cache")
    images = image_set(data)
    assert images.pixels.shape == (8, 3, 16, 16)
    assert (images.labels == 1).sum() == 4  # 6 + 6 images, stratified down to 8
    names = [Path(p).name for p in images.manifest["path"]]
    assert all(expected[name] == label for name, label in zip(names, images.labels, strict=True))
    check()


@pytest.fixture
def loaded(csv_data, tiny_config, cache_dir) -> tuple[DataRef, ImageSet, Split]:
    data = load_images.fn(str(csv_data.csv), tiny_config, cache_dir)
    images = image_set(data)
    split = make_split(
        images.manifest, tiny_config.split.test_size, tiny_config.split.folds, tiny_config.seed
    )
    return data, images, split


def test_split_images_logs_fold_membership(mlflow_local, loaded, tiny_config) -> None:
    data, images, _ = loaded
    run_id = new_run()
    split = split_images.fn(data, tiny_config, run_id)
    assert isinstance(split, Split)
    assert 0 < split.test.sum() < len(split.test)
    assert "data/folds.csv" in artifact_paths(run_id, "data")
    local = MlflowClient().download_artifacts(run_id, "data/folds.csv", str(Path.cwd() / "dl"))
    membership = pd.read_csv(local, keep_default_na=False)
    assert membership["path"].tolist() == images.manifest["path"].tolist()
    assert membership["split"].tolist() == ["test" if t else "train" for t in split.test]
    assert membership["fold"].tolist() == split.fold.tolist()


def test_validate_images_passes_and_logs_the_report(
    mlflow_local, loaded, tiny_config, csv_data
) -> None:
    data, images, split = loaded
    run_id = new_run()
    assert validate_images.fn(data, split, tiny_config, str(csv_data.csv), run_id) is True
    assert {"validation/result.json", "validation/data_docs.html"} <= artifact_paths(
        run_id, "validation"
    )
    run = MlflowClient().get_run(run_id)
    assert run.data.tags["validation"] == "passed"
    datasets = run.inputs.dataset_inputs
    assert [d.dataset.name for d in datasets] == [f"glasses-{images.fingerprint}"]


def test_validate_images_stops_on_a_corrupt_file(
    mlflow_local, csv_data, tiny_config, cache_dir, unchanged
) -> None:
    corrupt = csv_data.file(5)
    content = corrupt.read_bytes()
    corrupt.write_bytes(content[: len(content) // 3])
    check = unchanged(csv_data.root)
    data = load_images.fn(str(csv_data.csv), tiny_config, cache_dir)
    images = image_set(data)
    split = make_split(images.manifest, 0.2, 2, tiny_config.seed)
    run_id = new_run()

    with pytest.raises(DataValidationError) as caught:
        validate_images.fn(data, split, tiny_config, str(csv_data.csv), run_id)
    message = str(caught.value)
    assert str(corrupt.resolve()) in message
    assert "do not decode as images" in message
    assert str(csv_data.file(4).resolve()) not in message

    # The report is logged before the gate closes, and the run says it failed.
    assert {"validation/result.json", "validation/data_docs.html"} <= artifact_paths(
        run_id, "validation"
    )
    local = MlflowClient().download_artifacts(
        run_id, "validation/result.json", str(Path.cwd() / "dl")
    )
    result = json.loads(Path(local).read_text())
    assert result["success"] is False
    run = MlflowClient().get_run(run_id)
    assert run.data.tags["validation"] == "failed"
    assert run.inputs.dataset_inputs == []  # no dataset is recorded for data that failed
    check()


def test_validate_images_names_a_copy_with_the_other_label_and_a_missing_file(
    mlflow_local, csv_data, tiny_config, cache_dir
) -> None:
    original = csv_data.table.iloc[0]
    copy = csv_data.root / "images" / "copy.png"
    copy.write_bytes(csv_data.file(0).read_bytes())
    extra = pd.DataFrame(
        [
            {"path": "images/copy.png", "label": 1 - original["label"], "group": "copy"},
            {"path": "images/gone.png", "label": 0, "group": "gone"},
        ]
    )
    pd.concat([csv_data.table, extra], ignore_index=True).to_csv(csv_data.csv, index=False)
    data = load_images.fn(str(csv_data.csv), tiny_config, cache_dir)
    images = image_set(data)
    split = make_split(images.manifest, 0.2, 2, tiny_config.seed)

    with pytest.raises(DataValidationError) as caught:
        validate_images.fn(data, split, tiny_config, str(csv_data.csv), new_run())
    message = str(caught.value)
    first, second = sorted(
        [
            f"{csv_data.file(0).resolve()} (label {original['label']})",
            f"{copy.resolve()} (label {1 - original['label']})",
        ]
    )
    assert f"{first}, {second} hold the same image with different labels" in message
    gone = csv_data.root.resolve() / "images" / "gone.png"
    assert f"listed files that do not exist: {gone}" in message
    assert "do not decode" not in message
