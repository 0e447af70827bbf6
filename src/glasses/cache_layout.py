"""Where everything in the cache folder lives: one table of paths, built from the folder.

The folder is shared by every process that runs a task (a shared volume on a cluster), so each
of them must spell a path the same way; they all ask a `CacheLayout`. `GLASSES_CACHE_DIR` moves
the folder, and is read here only.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENT = "GLASSES_CACHE_DIR"
DEFAULT_ROOT = Path(".cache/glasses")


class CacheFolderError(RuntimeError):
    """The cache folder cannot be used; the message names it and how to move it."""


@dataclass(frozen=True)
class CacheLayout:
    """The cache folder `root` and the paths of its entries:

    synthetic/n{count}-g{glasses}-s{size}-seed{seed}/   generated images and their labels
    images/{key}.npy, images/{key}.manifest.parquet     decoded pixels and their manifest
    scattering/{key}.npy                                scattering coefficients (plain and
                                                        with augmented copies)
    results/                                            finished work (`glasses.results`)
    """

    root: Path

    @classmethod
    def from_environment(cls) -> CacheLayout:
        """`GLASSES_CACHE_DIR`, else `.cache/glasses` in the working folder; resolved, so that
        a later change of working folder does not move it."""
        return cls(Path(os.environ.get(ENVIRONMENT, DEFAULT_ROOT)).resolve())

    def make(self) -> None:
        """Create the folder if need be and check that it takes files: a run finds out before
        any work, in one line, instead of failing in its first cache write."""
        if self.root.exists() and not self.root.is_dir():
            raise CacheFolderError(
                f"cache folder {self.root} is a file; set {ENVIRONMENT} to a folder"
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=self.root).close()
        except OSError as error:
            raise CacheFolderError(
                f"cache folder {self.root} cannot be written ({error.strerror}); "
                f"set {ENVIRONMENT} to a writable folder"
            ) from None

    def synthetic(self, count: int, glasses: int, size: int, seed: int) -> Path:
        """The folder of a generated image set: its images and `labels.csv`."""
        return self.root / "synthetic" / f"n{count}-g{glasses}-s{size}-seed{seed}"

    def images(self, key: str) -> tuple[Path, Path]:
        """(pixels, manifest) of a decoded image set."""
        folder = self.root / "images"
        return folder / f"{key}.npy", folder / f"{key}.manifest.parquet"

    def scattering(self, key: str) -> Path:
        """A scattering-coefficient entry."""
        return self.root / "scattering" / f"{key}.npy"

    @property
    def results(self) -> Path:
        """The result store's folder."""
        return self.root / "results"
