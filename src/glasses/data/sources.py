"""Turn a `data` argument into one labelled image table, whatever layout the images come in.

Every source yields the same columns (`path` absolute, `label`, `group`, plus whatever extra
columns the source carries, e.g. `glasses_kind` or `mask_path`), so everything downstream is
layout-agnostic. Sources only read: nothing in a data folder is ever written, moved or deleted.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from glasses.cache_layout import CacheLayout
from glasses.config import DataConfig
from glasses.data.synthetic import generate_synthetic

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"}
CLASS_FOLDERS = {"glasses": 1, "no_glasses": 0}
LABELS_FILES = ("labels.csv", "train.csv")  # our manifest, or Kaggle's (`read_labels_csv`)
SYNTHETIC = "synthetic"


class DataSourceError(ValueError):
    """A data argument that cannot be read as a labelled image set; the message says where."""


def load_source(data: str, config: DataConfig, cache_dir: Path, seed: int) -> pd.DataFrame:
    """Resolve `data` (the word `synthetic`, a folder, or a CSV file) into the image table."""
    if data == SYNTHETIC:
        folder = CacheLayout(cache_dir).synthetic(
            config.synthetic_count, config.synthetic_glasses, config.image_size, seed
        )
        labels = generate_synthetic(
            folder, config.synthetic_count, config.synthetic_glasses, config.image_size, seed
        )
        return read_manifest_csv(labels)
    path = Path(data).expanduser()
    if not path.exists():
        raise DataSourceError(
            f"data: {path} does not exist (expected '{SYNTHETIC}', a folder or a CSV)"
        )
    if path.is_file():
        return read_labels_csv(path)
    layout = read_folder(path)
    if layout is None:
        raise DataSourceError(
            f"data: {path} has none of the accepted layouts: class folders "
            f"{'/ and '.join(CLASS_FOLDERS)}/, a labels.csv (path,label[,group]) "
            "or a Kaggle train.csv (id,glasses)"
        )
    table, _ = layout
    if table.empty:
        raise DataSourceError(f"data: no images found in {path}/glasses or {path}/no_glasses")
    return table


def read_folder(folder: Path) -> tuple[pd.DataFrame, Path | None] | None:
    """A folder's images in the first layout it has: class folders, else a labels CSV
    (`LABELS_FILES`, in order). Also returns the CSV (None for class folders); None when the
    folder has no layout. Class folders without images give an empty table."""
    if all((folder / name).is_dir() for name in CLASS_FOLDERS):
        return read_image_folder(folder), None
    for name in LABELS_FILES:
        if (folder / name).is_file():
            return read_labels_csv(folder / name), folder / name
    return None


def read_labels_csv(csv: Path) -> pd.DataFrame:
    """A labels CSV in either accepted format: our manifest or Kaggle's train.csv."""
    try:
        header = pd.read_csv(csv, nrows=0).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataSourceError(f"data: {csv} is not a readable CSV file ({error})") from error
    if {"id", "glasses"} <= set(header) and "path" not in header:
        return read_kaggle(csv)
    return read_manifest_csv(csv)


def read_image_folder(folder: Path) -> pd.DataFrame:
    """ImageFolder layout: `glasses/` and `no_glasses/`; files elsewhere are ignored."""
    root = folder.resolve()
    rows = [
        {"path": str(confined(root, image.relative_to(folder))), "label": label}
        for name, label in CLASS_FOLDERS.items()
        for image in images_under(folder / name)
    ]
    return pd.DataFrame(rows, columns=["path", "label"])


def images_under(folder: Path) -> list[Path]:
    """Image files (by suffix) anywhere below `folder`, sorted."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )


def read_manifest_csv(csv: Path) -> pd.DataFrame:
    """`path,label[,group,…]` with paths relative to the CSV; extra columns are kept."""
    table = pd.read_csv(csv, dtype={"path": str, "group": str, "mask_path": str})
    _require_columns(table, csv, ["path", "label"])
    if table.empty:
        raise DataSourceError(f"data: {csv} lists no images")
    root = csv.parent.resolve()
    table["path"] = [str(_listed(root, rel, csv)) for rel in table["path"]]
    if "mask_path" in table:
        table["mask_path"] = [
            str(_listed(root, rel, csv)) if isinstance(rel, str) and rel else ""
            for rel in table["mask_path"]
        ]
    table["label"] = _integer_labels(table["label"], table["path"], csv)
    return table


def read_kaggle(csv: Path) -> pd.DataFrame:
    """Kaggle "Glasses or No Glasses": `train.csv` with `id,glasses`, images `face-<id>.png`.

    The images may sit beside the CSV or in any sub-folder of it, as the archive unpacks them.
    """
    table = pd.read_csv(csv)
    _require_columns(table, csv, ["id", "glasses"])
    root = csv.parent.resolve()
    ids = pd.to_numeric(table["id"], errors="coerce")
    bad = ids.isna() | (ids != ids.round())
    if bad.any():
        rows = ", ".join(str(i + 2) for i in table.index[bad][:10])
        raise DataSourceError(f"data: {csv} has {int(bad.sum())} invalid id(s) on line(s) {rows}")
    images = {image.name: image for image in root.rglob("face-*.png")}
    names = [f"face-{int(face_id)}.png" for face_id in ids]
    missing = [name for name in names if name not in images]
    if missing:
        raise DataSourceError(
            f"data: {len(missing)} image(s) listed in {csv} not found under {root}: "
            + ", ".join(missing[:10])
            + (" …" if len(missing) > 10 else "")
        )
    paths = [str(confined(root, images[name].relative_to(root))) for name in names]
    return pd.DataFrame(
        {"path": paths, "label": _integer_labels(table["glasses"], pd.Series(paths), csv)}
    )


def _require_columns(table: pd.DataFrame, csv: Path, columns: list[str]) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise DataSourceError(
            f"data: {csv} is missing column(s) {', '.join(missing)} "
            f"(found: {', '.join(map(str, table.columns)) or 'none'})"
        )


def _listed(root: Path, relative: str, csv: Path) -> Path:
    """A CSV's path cell, resolved and `confined` to the CSV's folder."""
    if not isinstance(relative, str) or not relative.strip():
        raise DataSourceError(f"data: {csv} has an empty path")
    return confined(root, relative)


def confined(root: Path, relative: str | Path) -> Path:
    """`root / relative` resolved, refused when it lies outside `root` (itself resolved).

    The one rule of every layout, so that a symlink cannot bring in a file that a `../` in a
    CSV could not: training and `folds.csv` only ever see files inside the data folder.
    """
    path = (root / relative).resolve()
    if path.is_relative_to(root):
        return path
    link = _escaping_link(root, Path(relative))
    if link is not None:
        raise DataSourceError(
            f"data: {link} is a symlink to {(root / link).resolve()}, outside the data folder "
            f"{root}; copy what it points to into the folder or remove the link"
        )
    raise DataSourceError(
        f"data: {str(relative)!r} lies outside the data folder {root}; move the file into the "
        "folder and give its path relative to the folder"
    )


def _escaping_link(root: Path, relative: Path) -> Path | None:
    """The first symlink on the way down from `root` to `relative` that leads out of `root`;
    None for a path that leaves it by itself (absolute, `..`)."""
    if relative.is_absolute() or ".." in relative.parts:
        return None
    for depth in range(1, len(relative.parts) + 1):
        step = Path(*relative.parts[:depth])
        if (root / step).is_symlink() and not (root / step).resolve().is_relative_to(root):
            return step
    return None


def _integer_labels(labels: pd.Series, paths: pd.Series, csv: Path) -> pd.Series:
    """Integers pass (the validation suite judges 0/1); anything else is named here."""
    numeric = pd.to_numeric(labels, errors="coerce")
    bad = numeric.isna() | (numeric != numeric.round())
    if bad.any():
        examples = [f"{Path(p).name}={v!r}" for p, v in zip(paths[bad], labels[bad], strict=True)]
        raise DataSourceError(
            f"data: {csv} has {int(bad.sum())} unknown label(s) (expected 1 = glasses, "
            f"0 = no glasses): " + ", ".join(examples[:10])
        )
    return numeric.astype(int)
