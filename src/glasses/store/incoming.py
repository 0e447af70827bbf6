"""Discovery: the images of an incoming folder whose content the current version lacks."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from glasses.data.images import ImageSet, fingerprint, scan_images
from glasses.data.sources import CLASS_FOLDERS, DataSourceError, images_under, read_folder
from glasses.store.errors import DatasetError
from glasses.store.files import names, sha256


@dataclass(frozen=True)
class Batch:
    """The images of an incoming folder whose content the current version lacks.

    `table` holds `path` (absolute, inside `incoming`), `label`, `group`, `sha256` and the source's
    extra columns. `labels_file` is the CSV the labels came from (None for class folders): it
    belongs to the batch, since quarantined images without their labels would lose information.
    """

    id: str
    table: pd.DataFrame
    incoming: Path
    labels_file: Path | None = None

    def scan(self, size: int) -> ImageSet:
        """`scan_images` on the batch, refusing files changed since discovery, so that what the
        suite validates is exactly what `DatasetStore.stage` copies (it checks hashes too)."""
        images = scan_images(self.table.drop(columns="sha256"), size)
        changed = images.manifest["sha256"].to_numpy() != self.table["sha256"].to_numpy()
        if changed.any():
            raise DatasetError(
                f"incoming: {int(changed.sum())} file(s) of batch {self.id} changed since "
                f"discovery ({names(self.table['path'][changed])}); run the import again"
            )
        return images


def new_batch(incoming: Path, known: Collection[str]) -> Batch | None:
    """The images in `incoming` whose content is not in `known`, or None when nothing is new.

    The incoming folder holds one layout of the main data (`read_folder`); empty class folders
    are the idle state. Images without any layout raise, unless `known` holds them all (what is
    left after quarantining a CSV batch that also listed known images).
    """
    if not incoming.is_dir():
        raise DataSourceError(f"incoming: {incoming} is not a folder")
    layout = read_folder(incoming)
    if layout is None:
        _refuse_unlabelled(incoming, known)
        return None
    table, labels_file = layout
    hashed = with_hashes(table)
    new = hashed[~hashed["sha256"].isin(known)].reset_index(drop=True)
    if new.empty:
        return None
    return Batch(fingerprint(new["sha256"], new["label"]), new, incoming, labels_file)


def with_hashes(table: pd.DataFrame) -> pd.DataFrame:
    """The table with `sha256` of every file, `group` as text and integer labels."""
    groups = table["group"].fillna("").astype(str) if "group" in table else ""
    hashed = table.assign(group=groups, sha256=[sha256(Path(p)) for p in table["path"]])
    return hashed.astype({"label": int})


def _refuse_unlabelled(incoming: Path, known: Collection[str]) -> None:
    unknown = [path for path in images_under(incoming) if sha256(path) not in known]
    if unknown:
        raise DataSourceError(
            f"incoming: {len(unknown)} new image(s) in {incoming} have no labels "
            f"({names(map(str, unknown))}); put them in {'/ and '.join(CLASS_FOLDERS)}/ or list "
            "them in a labels.csv (path,label[,group])"
        )
