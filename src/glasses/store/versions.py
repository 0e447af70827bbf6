"""`DatasetStore`: content-addressed images and immutable, content-named version manifests."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from glasses.data.images import fingerprint, label_conflicts
from glasses.data.sources import DataSourceError
from glasses.locking import file_lock
from glasses.store import incoming as discovery
from glasses.store import quarantine as quarantining
from glasses.store.errors import DatasetError, DatasetLockedError
from glasses.store.files import names, now, read, sha256, write_atomic
from glasses.store.incoming import Batch

VERSION_COLUMNS = ["sha256", "label", "group", "object", "source", "batch", "added_at"]
_DTYPES = {column: str for column in VERSION_COLUMNS} | {"label": int}
_ID_LENGTH = 16


class DatasetStore:
    """One dataset store on disk. Every change happens under `lock()`, which methods take
    themselves when the caller does not hold it; one object serves one thread."""

    def __init__(self, root: Path, quarantine: Path | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.quarantine_root = (
            Path(quarantine).expanduser().resolve() if quarantine else self.root / "quarantine"
        )
        self._locked = False

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
        if fingerprint(rows["sha256"], rows["label"]) != version_id:
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

    # ---- incoming and quarantine ---------------------------------------------------------------

    def discover(self, incoming: Path) -> Batch | None:
        """The incoming images whose content HEAD lacks, or None when nothing is new; renamed
        or re-copied images are not new (`glasses.store.incoming.new_batch`)."""
        incoming = Path(incoming).expanduser().resolve()
        for area in (self.root, self.quarantine_root):
            if area.is_relative_to(incoming) or incoming.is_relative_to(area):
                # Stored or quarantined images inside incoming would be read back as new data.
                raise DataSourceError(
                    f"incoming: {incoming} and {area} must not contain each other"
                )
        with self.lock():
            return discovery.new_batch(incoming, set(self._head_rows()[1]["sha256"]))

    def quarantine(self, batch: Batch, report_json: str, report_html: str, reason: str) -> Path:
        """Move the rejected batch out of incoming (`glasses.store.quarantine.quarantine`);
        nothing is deleted and the dataset is unchanged."""
        with self.lock():
            return quarantining.quarantine(
                batch, self.quarantine_root, report_json, report_html, reason
            )

    # ---- importing -----------------------------------------------------------------------------

    def init_from(self, table: pd.DataFrame) -> str:
        """The first version, from an existing labelled table (`path`, `label`[, `group`]).

        Idempotent for the same content; a store that already holds other content refuses,
        since new images must come through discovery and validation.
        """
        hashed = discovery.with_hashes(table)
        once = hashed.drop_duplicates("sha256")  # a version holds each content once
        version_id = fingerprint(once["sha256"], once["label"])
        with self.lock():
            head = self.head()
            if head not in (None, version_id):
                raise DatasetError(
                    f"{self.root} already holds version {head}; add images through the incoming "
                    "folder instead"
                )
            self.publish(self._stage(hashed, version_id))
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
        return self._stage(batch.table, batch.id)

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
            write_atomic(self._versions / "HEAD", f"{version_id}\n".encode(), durable=True)

    def _stage(self, table: pd.DataFrame, batch_id: str) -> str:
        if table.empty:
            raise DatasetError(f"batch {batch_id} holds no images")
        conflicts = label_conflicts(table)
        if conflicts:
            raise DatasetError(f"batch {batch_id} cannot be imported: " + "; ".join(conflicts))
        bad = ~table["label"].isin([0, 1])
        if bad.any():
            raise DatasetError(
                f"batch {batch_id}: labels must be 0 or 1 ({names(table['path'][bad])})"
            )
        with self.lock():
            head, base = self._head_rows()
            new = _new_rows(table, set(base["sha256"]), batch_id)
            if new.empty and head is not None:
                return head
            self._copy_objects(new)
            version = pd.concat([base, new], ignore_index=True)
            version = version.sort_values("sha256", ignore_index=True)
            version_id = fingerprint(version["sha256"], version["label"])
            target = self._versions / f"{version_id}.csv"
            if not target.exists():  # immutable: a rerun finds the complete file it wrote
                write_atomic(target, version.to_csv(index=False).encode(), durable=True)
            return version_id

    def _copy_objects(self, rows: pd.DataFrame) -> None:
        """Copy (never move) each image under its hash; one `os.sync` orders them all before the
        manifest that references them, where an fsync per image would cost milliseconds each."""
        written = False
        for digest, name, source in zip(
            rows["sha256"], rows["object"], rows["source"], strict=True
        ):
            target = self.root / name
            if target.is_file() and sha256(target) == digest:
                continue  # left by an interrupted run; checked, as it was never fsynced
            content = read(Path(source))
            if hashlib.sha256(content).hexdigest() != digest:
                raise DatasetError(f"{source} changed since discovery; run the import again")
            write_atomic(target, content, durable=False)
            written = True
        if written:
            os.sync()

    # ---- locking -------------------------------------------------------------------------------

    @contextmanager
    def lock(self, timeout: float = 0.0) -> Iterator[None]:
        """Exclusive inter-process lock on `<root>/.lock`; re-entrant within this object.

        Non-blocking by default: a scheduled run that finds another one importing should stop
        with a clear error and leave the work to the next tick, not queue up behind it. The
        next holder first completes any interrupted quarantine.
        """
        if self._locked:
            yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / ".lock", timeout, _import_running):
            self._locked = True
            try:
                quarantining.finish_pending(self.quarantine_root)
                yield
            finally:
                self._locked = False


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
            "added_at": now(),
        },
        columns=VERSION_COLUMNS,
    )


def _import_running(path: Path, holder: str) -> DatasetLockedError:
    return DatasetLockedError(
        f"another import is running (lock {path} held by {holder}); try again when it has finished"
    )
