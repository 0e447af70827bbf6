"""`load_source` on good layouts and on every kind of bad `data` argument; it only ever reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glasses.config import resolve_config
from glasses.data.sources import DataSourceError, load_source

DATA = resolve_config("tiny").data


def load(data: Path | str, cache: Path) -> object:
    return load_source(str(data), DATA, cache, seed=0)


def write_png(path: Path, value: int = 40) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 32, 3), value, dtype=np.uint8)).save(path)


# ---- good layouts -------------------------------------------------------------------------------


def test_labels_csv_file_and_its_folder_give_the_same_table(csv_data, tmp_path, unchanged) -> None:
    check = unchanged(csv_data.root)
    from_file = load(csv_data.csv, tmp_path / "cache")
    from_folder = load(csv_data.root, tmp_path / "cache")
    assert from_file.equals(from_folder)
    assert len(from_file) == len(csv_data.table)
    assert from_file["label"].tolist() == csv_data.table["label"].tolist()
    assert from_file["group"].tolist() == csv_data.table["group"].tolist()
    root = csv_data.root.resolve()
    expected = [str(root / p) for p in csv_data.table["path"]]
    assert from_file["path"].tolist() == expected
    assert all(Path(p).is_absolute() for p in from_file["path"])
    check()


def test_manifest_keeps_extra_columns(tmp_path) -> None:
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "b.png")
    (tmp_path / "labels.csv").write_text(
        "path,label,group,glasses_kind\na.png,1,p1,round\nb.png,0,p2,none\n"
    )
    table = load(tmp_path, tmp_path / "cache")
    assert table["glasses_kind"].tolist() == ["round", "none"]
    assert table["label"].tolist() == [1, 0]


def test_image_folder_layout_reads_labels(folder_data, tmp_path, unchanged) -> None:
    root, expected = folder_data
    (root / "glasses" / "notes.txt").write_text("not an image")
    (root / "README.md").write_text("ignored")
    check = unchanged(root)
    table = load(root, tmp_path / "cache")
    labels = {Path(p).name: label for p, label in zip(table["path"], table["label"], strict=True)}
    assert labels == expected
    assert set(table["label"]) == {0, 1}
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in table["path"])
    check()


def write_kaggle(root: Path, ids_labels: dict[int, int], sub: str = "faces-spring-2020") -> Path:
    for face_id in ids_labels:
        write_png(root / sub / sub / f"face-{face_id}.png", face_id)
    rows = "".join(f"{face_id},0.5,{label}\n" for face_id, label in ids_labels.items())
    (root / "train.csv").write_text("id,v1,glasses\n" + rows)
    return root / "train.csv"


def test_kaggle_layout_reads_images_from_a_sub_folder(tmp_path, unchanged) -> None:
    root = tmp_path / "kaggle"
    csv = write_kaggle(root, {1: 1, 2: 0, 10: 1})
    check = unchanged(root)
    for data in (root, csv):
        table = load(data, tmp_path / "cache")
        assert [Path(p).name for p in table["path"]] == ["face-1.png", "face-2.png", "face-10.png"]
        assert table["label"].tolist() == [1, 0, 1]
        assert all(Path(p).is_file() for p in table["path"])
    check()


def test_kaggle_listed_image_missing_is_named(tmp_path, unchanged) -> None:
    root = tmp_path / "kaggle"
    csv = write_kaggle(root, {1: 1, 2: 0})
    (root / "train.csv").write_text(csv.read_text() + "3,0.1,1\n")
    check = unchanged(root)
    with pytest.raises(DataSourceError, match="face-3.png") as caught:
        load(root, tmp_path / "cache")
    assert str(csv.resolve()) in str(caught.value) or str(csv) in str(caught.value)
    assert "face-1.png" not in str(caught.value)
    check()


def test_kaggle_non_numeric_label_names_the_file(tmp_path) -> None:
    root = tmp_path / "kaggle"
    write_kaggle(root, {1: 1, 2: 0})
    (root / "train.csv").write_text("id,glasses\n1,yes\n2,0\n")
    with pytest.raises(DataSourceError, match="train.csv") as caught:
        load(root, tmp_path / "cache")
    assert "face-1.png='yes'" in str(caught.value)


@pytest.mark.parametrize("bad_id", ["", "abc"])
def test_kaggle_bad_id_is_a_data_source_error_naming_the_file(tmp_path, bad_id) -> None:
    root = tmp_path / "kaggle"
    write_kaggle(root, {1: 1})
    (root / "train.csv").write_text(f"id,glasses\n1,1\n{bad_id},0\n")
    with pytest.raises(DataSourceError, match="train.csv"):
        load(root, tmp_path / "cache")


# ---- bad input ----------------------------------------------------------------------------------


def test_missing_path(tmp_path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataSourceError, match="does not exist") as caught:
        load(missing, tmp_path / "cache")
    assert str(missing) in str(caught.value)
    assert not missing.exists()


def test_empty_folder(tmp_path, unchanged) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    check = unchanged(tmp_path)
    with pytest.raises(DataSourceError, match="none of the accepted layouts") as caught:
        load(empty, tmp_path / "cache")
    assert str(empty) in str(caught.value)
    assert list(empty.iterdir()) == []
    check()


def test_folder_without_accepted_layout(tmp_path, unchanged) -> None:
    root = tmp_path / "loose"
    write_png(root / "glasses" / "a.png")  # only one of the two class folders
    write_png(root / "b.png")
    (root / "other.csv").write_text("path,label\nb.png,1\n")
    check = unchanged(root)
    with pytest.raises(DataSourceError, match="none of the accepted layouts"):
        load(root, tmp_path / "cache")
    check()


def test_image_folder_without_images(tmp_path, unchanged) -> None:
    root = tmp_path / "classes"
    (root / "glasses").mkdir(parents=True)
    (root / "no_glasses").mkdir()
    (root / "glasses" / "readme.txt").write_text("x")
    check = unchanged(root)
    with pytest.raises(DataSourceError, match="no images found"):
        load(root, tmp_path / "cache")
    check()


def test_csv_missing_label_column_names_file_and_column(tmp_path, unchanged) -> None:
    write_png(tmp_path / "d" / "a.png")
    csv = tmp_path / "d" / "labels.csv"
    csv.write_text("path,group\na.png,p1\n")
    check = unchanged(tmp_path / "d")
    with pytest.raises(DataSourceError) as caught:
        load(csv, tmp_path / "cache")
    message = str(caught.value)
    assert str(csv) in message
    assert "missing column(s) label" in message
    check()


def test_csv_without_rows(tmp_path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\n")
    with pytest.raises(DataSourceError, match="lists no images"):
        load(csv, tmp_path / "cache")


def test_unreadable_csv_is_named(tmp_path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_bytes(b"")
    with pytest.raises(DataSourceError, match="not a readable CSV") as caught:
        load(csv, tmp_path / "cache")
    assert str(csv) in str(caught.value)


def test_non_numeric_label_names_the_file(csv_data, tmp_path, unchanged) -> None:
    table = csv_data.table.copy()
    table["label"] = table["label"].astype(object)
    table.loc[3, "label"] = "yes"
    table.to_csv(csv_data.csv, index=False)
    check = unchanged(csv_data.root)
    with pytest.raises(DataSourceError) as caught:
        load(csv_data.csv, tmp_path / "cache")
    message = str(caught.value)
    assert str(csv_data.csv) in message
    assert f"{Path(table.loc[3, 'path']).name}='yes'" in message
    assert "1 unknown label" in message
    check()


def test_fractional_label_is_rejected(tmp_path) -> None:
    write_png(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("path,label\na.png,0.5\n")
    with pytest.raises(DataSourceError, match="a.png=0.5"):
        load(tmp_path, tmp_path / "cache")


@pytest.mark.parametrize("outside", ["../x.png", "images/../../x.png", "ABSOLUTE"])
def test_path_outside_the_data_root_is_named(tmp_path, outside, unchanged) -> None:
    root = tmp_path / "d"
    write_png(root / "a.png")
    write_png(tmp_path / "x.png")  # exists, but lies outside the CSV's folder
    if outside == "ABSOLUTE":
        outside = str(tmp_path / "x.png")
    (root / "labels.csv").write_text(f"path,label\na.png,1\n{outside},0\n")
    check = unchanged(tmp_path)
    with pytest.raises(DataSourceError, match="outside the data folder") as caught:
        load(root, tmp_path / "cache")
    assert repr(outside) in str(caught.value)
    assert "symlink" not in str(caught.value)
    check()


LAYOUTS = ["csv", "folder", "kaggle"]


def with_link(layout: str, root: Path, target: Path) -> str:
    """A data folder in `layout` with two images and a third that is a symlink to `target`;
    returns the link's path relative to `root`."""
    if layout == "csv":
        write_png(root / "a.png")
        write_png(root / "b.png")
        (root / "labels.csv").write_text("path,label\na.png,1\nb.png,0\nlink.png,1\n")
        link = "link.png"
    elif layout == "folder":
        write_png(root / "glasses" / "a.png")
        write_png(root / "no_glasses" / "b.png")
        link = "glasses/link.png"
    else:
        csv = write_kaggle(root, {1: 1, 2: 0})
        csv.write_text(csv.read_text() + "3,0.5,1\n")
        link = "face-3.png"
    (root / link).symlink_to(target)
    return link


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_symlink_out_of_the_data_folder_is_refused_in_every_layout(
    tmp_path, layout, unchanged
) -> None:
    root = tmp_path / "d"
    write_png(tmp_path / "secret.png")
    link = with_link(layout, root, tmp_path / "secret.png")
    check = unchanged(tmp_path)
    with pytest.raises(DataSourceError) as caught:
        load(root, tmp_path / "cache")
    message = str(caught.value)
    assert f"{link} is a symlink to {(tmp_path / 'secret.png').resolve()}" in message
    assert f"outside the data folder {root.resolve()}" in message
    assert "remove the link" in message
    check()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_symlink_within_the_data_folder_is_read_in_every_layout(
    tmp_path, layout, unchanged
) -> None:
    root = tmp_path / "d"
    write_png(root / "originals" / "c.png")
    with_link(layout, root, root / "originals" / "c.png")
    check = unchanged(tmp_path)
    table = load(root, tmp_path / "cache")
    assert len(table) == 3
    assert str((root / "originals" / "c.png").resolve()) in table["path"].tolist()
    check()


def test_a_csv_path_through_a_linked_folder_out_names_the_link(tmp_path) -> None:
    root = tmp_path / "d"
    write_png(tmp_path / "elsewhere" / "x.png")
    write_png(root / "a.png")
    (root / "more").symlink_to(tmp_path / "elsewhere")
    (root / "labels.csv").write_text("path,label\na.png,1\nmore/x.png,0\n")
    with pytest.raises(DataSourceError, match="more is a symlink to .*elsewhere, outside"):
        load(root, tmp_path / "cache")


def test_empty_path_cell_is_named(tmp_path) -> None:
    write_png(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("path,label\na.png,1\n,0\n")
    with pytest.raises(DataSourceError, match="empty path"):
        load(tmp_path, tmp_path / "cache")
