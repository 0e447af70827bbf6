"""Deterministic synthetic faces with and without glasses: the embedded default data set.

The pipeline must run anywhere without a download, so it ships a generator instead of images:
`glasses.data.faces` plans who appears in each image, `glasses.data.rendering` draws it, and
this module writes the set once per parameter set into a folder that later runs reuse.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from glasses.data.faces import plan_shots
from glasses.data.rendering import render

# Bump whenever the rendering changes, so cached data sets of an older look are not reused.
GENERATOR_VERSION = 1

SYNTHETIC_COLUMNS = ["path", "label", "label_name", "group", "glasses_kind", "mask_path"]


def generate_synthetic(root: Path, count: int, n_glasses: int, size: int, seed: int) -> Path:
    """Write the data set once into `root` and return the path of its labels.csv."""
    root = Path(root)
    params = {
        "generator_version": GENERATOR_VERSION,
        "count": int(count),
        "n_glasses": int(n_glasses),
        "size": int(size),
        "seed": int(seed),
    }
    if _is_cached(root, params):
        return root / "labels.csv"
    if count < 1 or not 0 <= n_glasses <= count or size < 16:
        raise ValueError(f"synthetic data: need count >= 1, 0 <= n_glasses <= count, size >= 16; "
                         f"got count={count}, n_glasses={n_glasses}, size={size}")  # fmt: skip
    root.parent.mkdir(parents=True, exist_ok=True)
    # A private sibling folder renamed into place makes the data set appear all at once: a killed
    # run leaves no half-written set behind, and racing processes cannot mix their files.
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        _write_dataset(staging, params)
        try:
            os.replace(staging, root)
        except OSError:
            if not _is_cached(root, params):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root / "labels.csv"


def _is_cached(root: Path, params: dict[str, int]) -> bool:
    """True when `root` already holds this very data set; refuses to touch any other content."""
    if not root.exists():
        return False
    params_file = root / "params.json"
    if params_file.is_file():
        found = json.loads(params_file.read_text())
        if found == params:
            return True
        raise ValueError(
            f"{root} already holds a synthetic data set made with {found}, not {params}; "
            "choose another folder for these parameters"
        )
    if any(root.iterdir()):
        raise ValueError(f"{root} is not empty and holds no synthetic data set (no params.json)")
    return False


def _write_dataset(folder: Path, params: dict[str, int]) -> None:
    """Render every image in order from one generator, so the seed fixes every byte."""
    rng = np.random.default_rng(params["seed"])
    shots = plan_shots(rng, params["count"], params["n_glasses"])
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    rows = []
    for index, shot in enumerate(shots):
        name = f"{index:05d}.png"
        image, mask = render(shot, params["size"], rng)
        image.save(folder / "images" / name, format="PNG", compress_level=1)
        mask_path = ""
        if mask is not None:
            mask_path = f"masks/{name}"
            mask.save(folder / mask_path, format="PNG", compress_level=1)
        wears = shot.eyewear is not None
        rows.append([f"images/{name}", int(wears), "glasses" if wears else "no_glasses",
                     shot.person.group, shot.kind, mask_path])  # fmt: skip
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(SYNTHETIC_COLUMNS)
        writer.writerows(rows)
    # Written last: its presence is what marks the folder as a finished data set.
    (folder / "params.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
