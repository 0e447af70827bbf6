"""The versioned data set that scheduled imports grow: content-addressed images, immutable
version manifests, and the incoming and quarantine areas around them.

Layout under the store root:

    objects/<sha[:2]>/<sha><ext>   one copy of every accepted image, named by its content
    versions/<id>.csv              one immutable manifest per version (VERSION_COLUMNS)
    versions/HEAD                  the id of the current version
    quarantine/<time>-<batch>/     rejected batches (the location is configurable)
    .lock                          flock'ed by the one process allowed to change anything

Why this shape:

- A version id hashes the version's (sha256, label) pairs with the formula of
  `ImageSet.fingerprint`, so the same content always gets the same id, importing it twice is a
  no-op, and scanning `manifest(id)` gives back fingerprint `id`: a run that logs the id can have
  its training data rebuilt and checked.
- Accepted images are copied, never moved: on success the user's incoming files stay untouched,
  and since discovery compares content with HEAD, leaving them there never imports them twice.
  Only a rejected batch is moved (to quarantine), because the user asked to see it set aside.
- Nothing becomes visible before `versions/HEAD` is replaced, atomically and last. A run killed
  earlier leaves HEAD on the old, complete version; the objects and manifest it already wrote
  are named by content, so the next run reuses them and reaches the same id.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from glasses.data.images import ImageSet, scan_images
from glasses.data.sources import (
    CLASS_FOLDERS,
    IMAGE_SUFFIXES,
    DataSourceError,
    read_image_folder,
    read_labels_csv,
)
from glasses.data.splits import held_out_mask

VERSION_COLUMNS = ["sha256", "label", "group", "object", "source", "batch", "added_at"]
LABELS_FILES = ("labels.csv", "train.csv")  # the CSV layouts, in glasses.data.sources' order
_DTYPES = {column: str for column in VERSION_COLUMNS} | {"label": int}
_ID_LENGTH = 16
_PENDING = ".pending-"
_PLAN = "moves.json"
_MAX_NAMED = 10


class DatasetError(RuntimeError):
    """The store refuses an operation that would make a version wrong, ambiguous or lossy."""


class DatasetLockedError(DatasetError):
    """Another process is changing the store; trying again later is always safe."""


def content_id(sha256: Iterable[str], labels: Iterable[int]) -> str:
    """Order-independent id of a set of labelled images (`ImageSet.fingerprint`'s formula).

    Duplicated pairs count once, so a batch holding two copies of an image has the id of the
    version that stores it once.
    """
    lines = sorted({f"{s}:{int(label)}" for s, label in zip(sha256, labels, strict=True)})
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:_ID_LENGTH]


@dataclass(frozen=True)
class Batch:
    """The images of an incoming folder whose content the current version lacks.

    `table` holds `path` (absolute, inside `incoming`), `label`, `group`, `sha256` and the source's
    extra columns. `labels_file` is the CSV the labels came from (None for class folders): it
    belongs to the batch, since quarantined images without their labels would lose information.
    `conflicts` names content labelled both ways within the batch, which no version can hold.
    """

    id: str
    table: pd.DataFrame
    incoming: Path
    labels_file: Path | None = None
    conflicts: tuple[str, ...] = ()

    def scan(self, size: int) -> ImageSet:
        """`scan_images` on the batch, refusing files changed since discovery, so that what the
        suite validates is exactly what `DatasetStore.stage` copies (it checks hashes too)."""
        images = scan_images(self.table.drop(columns="sha256"), size)
        changed = images.manifest["sha256"].to_numpy() != self.table["sha256"].to_numpy()
        if changed.any():
            raise DatasetError(
                f"incoming: {int(changed.sum())} file(s) of batch {self.id} changed since "
                f"discovery ({_names(self.table['path'][changed])}); run the import again"
            )
        return images


def split_batch(
    table: pd.DataFrame,
    test_share: float,
    seed: int,
    test_groups: Collection[str] = frozenset(),
    train_groups: Collection[str] = frozenset(),
) -> np.ndarray:
    """True for the rows of the batch's own test share: stratified, grouped, seeded.

    People already on one side of the fixed split (`test_groups`, `train_groups`) stay on that
    side, so the challenger never trains on a person of the fixed test split and no test image
    shows a person both models trained on. The other rows are split like the main data
    (`held_out_mask`), which raises `SplitError` when they hold too few people or distinct images
    for the share. An empty group names nobody and is never pinned.
    """
    groups = (
        table["group"].fillna("").astype(str) if "group" in table else pd.Series([""] * len(table))
    )
    named = (groups != "").to_numpy()
    test = named & groups.isin(set(test_groups)).to_numpy()
    rest = ~test & ~(named & groups.isin(set(train_groups)).to_numpy())
    if rest.any():
        test[rest] = held_out_mask(table[rest].reset_index(drop=True), test_share, seed)
    return test


class DatasetStore:
    """One dataset store on disk. Every change happens under `lock()`, which methods take
    themselves when the caller does not hold it; one object serves one thread."""

    def __init__(self, root: Path, quarantine: Path | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.quarantine_root = (
            Path(quarantine).expanduser().resolve() if quarantine else self.root / "quarantine"
        )
        self._lock_fd: int | None = None

    @property
    def _versions(self) -> Path:
        return self.root / "versions"

    # ---- reading -------------------------------------------------------------------------------

    def head(self) -> str | None:
        """The current version, or None before the first import."""
        try:
            version_id = (self._versions / "HEAD").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        self._version_file(version_id)
        return version_id

    def manifest(self, version_id: str) -> pd.DataFrame:
        """The training table of any version, ready for `scan_images`: `path` (absolute, into
        objects/), `label`, `group` and `batch` (the batch that brought each image).

        Rows come sorted by content hash, so the table, and any seeded split of it, depends on
        the content alone and not on the order of imports. `sha256` is left out because
        `scan_images` computes it (and the fingerprint then equals `version_id`).
        """
        rows = self._rows(version_id)
        return pd.DataFrame(
            {
                "path": [str(self.root / name) for name in rows["object"]],
                "label": rows["label"],
                "group": rows["group"],
                "batch": rows["batch"],
            }
        )

    def _rows(self, version_id: str) -> pd.DataFrame:
        rows = pd.read_csv(self._version_file(version_id), dtype=_DTYPES, keep_default_na=False)
        if content_id(rows["sha256"], rows["label"]) != version_id:
            raise DatasetError(f"dataset version {version_id} was modified after it was written")
        return rows

    def _head_rows(self) -> tuple[str | None, pd.DataFrame]:
        head = self.head()
        if head is None:
            return None, pd.DataFrame(columns=VERSION_COLUMNS).astype(_DTYPES)
        return head, self._rows(head)

    def _version_file(self, version_id: str) -> Path:
        if len(version_id) != _ID_LENGTH or any(c not in "0123456789abcdef" for c in version_id):
            raise DatasetError(f"not a dataset version id: {version_id!r}")
        path = self._versions / f"{version_id}.csv"
        if not path.is_file():
            raise DatasetError(f"unknown dataset version {version_id} (no {path})")
        return path

    # ---- discovery -----------------------------------------------------------------------------

    def discover(self, incoming: Path) -> Batch | None:
        """The incoming images whose content HEAD lacks, or None when nothing is new.

        The incoming folder holds one layout of the main data: class folders, or a labels.csv or
        train.csv (class folders win, as in `load_source`). Renamed or re-copied images are not
        new. Images without any layout raise, unless HEAD already holds them all (what is left
        after quarantining a CSV batch that also listed known images).
        """
        incoming = Path(incoming).expanduser().resolve()
        self._refuse_overlap(incoming)
        with self.lock():
            known = set(self._head_rows()[1]["sha256"])
            layout = _read_layout(incoming)
            if layout is None:
                _refuse_unlabelled(incoming, known)
                return None
            table, labels_file = layout
            hashed = _hashed(table)
            new = hashed[~hashed["sha256"].isin(known)].reset_index(drop=True)
            if new.empty:
                return None
            return Batch(
                id=content_id(new["sha256"], new["label"]),
                table=new,
                incoming=incoming,
                labels_file=labels_file,
                conflicts=_conflicts(new),
            )

    def _refuse_overlap(self, incoming: Path) -> None:
        """Stored or quarantined images inside incoming would be read back as new data."""
        for area in (self.root, self.quarantine_root):
            if area.is_relative_to(incoming) or incoming.is_relative_to(area):
                raise DataSourceError(
                    f"incoming: {incoming} and {area} must not contain each other"
                )

    # ---- importing -----------------------------------------------------------------------------

    def init_from(self, table: pd.DataFrame) -> str:
        """The first version, from an existing labelled table (`path`, `label`[, `group`]).

        Idempotent for the same content; a store that already holds other content refuses,
        since new images must come through discovery and validation.
        """
        hashed = _hashed(table)
        version_id = content_id(hashed["sha256"], hashed["label"])
        with self.lock():
            head = self.head()
            if head not in (None, version_id):
                raise DatasetError(
                    f"{self.root} already holds version {head}; add images through the incoming "
                    "folder instead"
                )
            self._stage(hashed, version_id, _conflicts(hashed))
            self.publish(version_id)
        return version_id

    def commit(self, batch: Batch) -> str:
        """Stage and publish in one step; the id of the new (or unchanged) HEAD."""
        with self.lock():
            version_id = self.stage(batch)
            self.publish(version_id)
        return version_id

    def stage(self, batch: Batch) -> str:
        """Write the objects and the manifest of HEAD + batch without publishing them.

        A flow that trains on the new version before accepting it publishes last, so a run killed
        while training leaves HEAD as it was and the next run rediscovers the batch and gets the
        same id. Hashes are checked on the copied bytes, so a file changed since discovery is
        refused rather than stored under the wrong name.
        """
        return self._stage(batch.table, batch.id, batch.conflicts)

    def publish(self, version_id: str) -> None:
        """Make `version_id` the current version, unless it would drop an accepted image.

        HEAD only grows: the check catches a staged version made from a HEAD that has since
        moved on (e.g. by a run that ignored the lock).
        """
        with self.lock():
            head, rows = self._head_rows()
            if version_id == head:
                return
            lost = set(rows["sha256"]) - set(self._rows(version_id)["sha256"])
            if lost:
                raise DatasetError(
                    f"version {version_id} lacks {len(lost)} image(s) of the current version "
                    f"{head}; stage the batch again on top of {head}"
                )
            _write_atomic(self._versions / "HEAD", f"{version_id}\n".encode(), durable=True)

    def _stage(self, table: pd.DataFrame, batch_id: str, conflicts: tuple[str, ...]) -> str:
        if table.empty:
            raise DatasetError(f"batch {batch_id} holds no images")
        if conflicts:
            raise DatasetError(f"batch {batch_id} cannot be imported: " + "; ".join(conflicts))
        bad = ~table["label"].isin([0, 1])
        if bad.any():
            raise DatasetError(
                f"batch {batch_id}: labels must be 0 or 1 ({_names(table['path'][bad])})"
            )
        with self.lock():
            head, base = self._head_rows()
            new = _new_rows(table, set(base["sha256"]), batch_id)
            if new.empty and head is not None:
                return head
            self._copy_objects(new)
            version = pd.concat([base, new], ignore_index=True)
            version = version.sort_values("sha256", ignore_index=True)
            version_id = content_id(version["sha256"], version["label"])
            target = self._versions / f"{version_id}.csv"
            if not target.exists():  # immutable: a rerun finds the complete file it wrote
                _write_atomic(target, version.to_csv(index=False).encode(), durable=True)
            return version_id

    def _copy_objects(self, rows: pd.DataFrame) -> None:
        """Copy (never move) each image under its hash; one `os.sync` orders them all before the
        manifest that references them, where an fsync per image would cost milliseconds each."""
        written = False
        for sha256, name, source in zip(
            rows["sha256"], rows["object"], rows["source"], strict=True
        ):
            target = self.root / name
            if target.is_file() and _sha256(target) == sha256:
                continue  # left by an interrupted run; checked, as it was never fsynced
            content = _read(Path(source))
            if hashlib.sha256(content).hexdigest() != sha256:
                raise DatasetError(f"{source} changed since discovery; run the import again")
            _write_atomic(target, content, durable=False)
            written = True
        if written:
            os.sync()

    # ---- quarantine ----------------------------------------------------------------------------

    def quarantine(self, batch: Batch, report_json: str, report_html: str, reason: str) -> Path:
        """Move the batch's files (its new images and its labels file) out of incoming, into
        `<quarantine>/<UTC time>-<batch id>/incoming/` with their relative paths, beside the
        validation report and a README; nothing is deleted and the dataset is unchanged.

        The moves are planned in a file first and the folder gets its final name last, so a run
        killed half-way is completed by the next `lock()`: a half-moved batch is never left in
        incoming, where its remaining files could pass validation and be half-imported.
        """
        files = list(dict.fromkeys(Path(p) for p in batch.table["path"]))
        files += [batch.labels_file] if batch.labels_file else []
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        with self.lock():
            plan = {
                "incoming": str(batch.incoming),
                "files": {str(f.relative_to(batch.incoming)): _sha256(f) for f in files},
            }
            pending = self.quarantine_root / f"{_PENDING}{stamp}-{batch.id}"
            pending.mkdir(parents=True)
            _write_atomic(pending / _PLAN, json.dumps(plan, indent=1).encode(), durable=True)
            (pending / "validation.json").write_text(report_json, encoding="utf-8")
            (pending / "validation.html").write_text(report_html, encoding="utf-8")
            (pending / "README.txt").write_text(_readme(batch, reason, plan), encoding="utf-8")
            return _finish_quarantine(pending)

    # ---- locking -------------------------------------------------------------------------------

    @contextmanager
    def lock(self, timeout: float = 0.0) -> Iterator[None]:
        """Exclusive inter-process lock on `<root>/.lock`; re-entrant within this object.

        Non-blocking by default: a scheduled run that finds another one importing should stop
        with a clear error and leave the work to the next tick, not queue up behind it. The
        kernel drops a flock when its process dies, so a killed run leaves no stale lock; the
        next holder first completes any interrupted quarantine.
        """
        if self._lock_fd is not None:
            yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _flock(fd, path, timeout)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {_now()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        try:
            for pending in sorted(self.quarantine_root.glob(f"{_PENDING}*")):
                _finish_quarantine(pending)
            yield
        finally:
            self._lock_fd = None
            os.ftruncate(fd, 0)
            os.close(fd)


# ---- helpers -----------------------------------------------------------------------------------


def _read_layout(incoming: Path) -> tuple[pd.DataFrame, Path | None] | None:
    """The incoming folder read like the main data; empty class folders are the idle state."""
    if not incoming.is_dir():
        raise DataSourceError(f"incoming: {incoming} is not a folder")
    if all((incoming / name).is_dir() for name in CLASS_FOLDERS):
        if not any(_images_under(incoming / name) for name in CLASS_FOLDERS):
            return pd.DataFrame({"path": [], "label": []}), None
        return read_image_folder(incoming), None
    for name in LABELS_FILES:
        if (incoming / name).is_file():
            return read_labels_csv(incoming / name), incoming / name
    return None


def _refuse_unlabelled(incoming: Path, known: set[str]) -> None:
    unknown = [path for path in _images_under(incoming) if _sha256(path) not in known]
    if unknown:
        raise DataSourceError(
            f"incoming: {len(unknown)} new image(s) in {incoming} have no labels "
            f"({_names(map(str, unknown))}); put them in {'/ and '.join(CLASS_FOLDERS)}/ or list "
            "them in a labels.csv (path,label[,group])"
        )


def _images_under(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )


def _hashed(table: pd.DataFrame) -> pd.DataFrame:
    groups = table["group"].fillna("").astype(str) if "group" in table else ""
    hashed = table.assign(group=groups, sha256=[_sha256(Path(p)) for p in table["path"]])
    return hashed.astype({"label": int})


def _conflicts(table: pd.DataFrame) -> tuple[str, ...]:
    labels = table.groupby("sha256")["label"].nunique()
    return tuple(
        f"{_names(table.loc[table['sha256'] == sha256, 'path'])} hold the same image with "
        "different labels"
        for sha256 in labels.index[labels > 1]
    )


def _new_rows(table: pd.DataFrame, known: set[str], batch_id: str) -> pd.DataFrame:
    new = table[~table["sha256"].isin(known)].drop_duplicates("sha256")
    return pd.DataFrame(
        {
            "sha256": new["sha256"],
            "label": new["label"].astype(int),
            "group": new["group"],
            "object": [
                f"objects/{s[:2]}/{s}{Path(p).suffix.lower()}"
                for s, p in zip(new["sha256"], new["path"], strict=True)
            ],
            "source": new["path"].astype(str),
            "batch": batch_id,
            "added_at": _now(),
        },
        columns=VERSION_COLUMNS,
    )


def _finish_quarantine(pending: Path) -> Path:
    """Move every planned file still in incoming with its planned content; a file replaced
    since then is someone else's and stays. Then give the folder its final name."""
    plan_file = pending / _PLAN
    if plan_file.is_file():  # no plan: the run died before planning, so nothing was moved
        plan = json.loads(plan_file.read_text(encoding="utf-8"))
        incoming = Path(plan["incoming"])
        for name, sha256 in plan["files"].items():
            source, target = incoming / name, pending / "incoming" / name
            if source.is_file() and _sha256(source) == sha256:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(source, target)
    final = pending.with_name(pending.name.removeprefix(_PENDING))
    pending.rename(final)
    return final


def _readme(batch: Batch, reason: str, plan: dict) -> str:
    return (
        f"Batch {batch.id} was rejected on {_now()} and moved here from {batch.incoming}.\n\n"
        f"Reason:\n{reason}\n\n"
        "validation.json and validation.html hold the validation report. The rejected files are\n"
        "under incoming/, with their paths in the incoming folder; nothing was deleted and the\n"
        "dataset did not change. To submit them again, fix them and copy them back.\n\n"
        "Files:\n" + "".join(f"  {name}\n" for name in plan["files"])
    )


def _flock(fd: int, path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = path.read_text(encoding="utf-8").strip() or "a process that is starting"
                raise DatasetLockedError(
                    f"another import is running (lock {path} held by {holder}); "
                    "try again when it has finished"
                ) from None
            time.sleep(0.05)


def _write_atomic(target: Path, content: bytes, durable: bool) -> None:
    """Readers see the old file or the new one, never a part: write beside it, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")  # the lock admits one writer
    with temporary.open("wb") as file:
        file.write(content)
        if durable:
            file.flush()
            os.fsync(file.fileno())
    os.replace(temporary, target)
    if durable:
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _sha256(path: Path) -> str:
    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as error:
        raise DataSourceError(f"cannot read {path} ({error})") from error


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise DataSourceError(f"cannot read {path} ({error})") from error


def _names(paths: Iterable[str]) -> str:
    names = list(paths)
    return ", ".join(names[:_MAX_NAMED]) + (" …" if len(names) > _MAX_NAMED else "")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
