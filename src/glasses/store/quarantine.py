"""Rejected batches moved out of incoming, planned first so that a killed move is completed."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from glasses.store.files import now, sha256, write_atomic
from glasses.store.incoming import Batch

PENDING = ".pending-"
_PLAN = "moves.json"


def quarantine(batch: Batch, root: Path, report_json: str, report_html: str, reason: str) -> Path:
    """Move the batch's files (its new images and its labels file) out of incoming, into
    `<root>/<UTC time>-<batch id>/incoming/` with their relative paths, beside the validation
    report and a README; nothing is deleted. The caller holds the store's lock.

    The moves are planned in a file first and the folder gets its final name last, so a run
    killed half-way is completed by `finish_pending`: a half-moved batch is never left in
    incoming, where its remaining files could pass validation and be half-imported.
    """
    files = list(dict.fromkeys(Path(p) for p in batch.table["path"]))
    files += [batch.labels_file] if batch.labels_file else []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    plan = {
        "incoming": str(batch.incoming),
        "files": {str(f.relative_to(batch.incoming)): sha256(f) for f in files},
    }
    pending = root / f"{PENDING}{stamp}-{batch.id}"
    pending.mkdir(parents=True)
    write_atomic(pending / _PLAN, json.dumps(plan, indent=1).encode(), durable=True)
    (pending / "validation.json").write_text(report_json, encoding="utf-8")
    (pending / "validation.html").write_text(report_html, encoding="utf-8")
    (pending / "README.txt").write_text(_readme(batch, reason, plan), encoding="utf-8")
    return _finish(pending)


def finish_pending(root: Path) -> None:
    """Complete every quarantine that a killed run left half-done."""
    for pending in sorted(root.glob(f"{PENDING}*")):
        _finish(pending)


def _finish(pending: Path) -> Path:
    """Move every planned file still in incoming with its planned content; a file replaced
    since then is someone else's and stays. Then give the folder its final name."""
    plan_file = pending / _PLAN
    if plan_file.is_file():  # no plan: the run died before planning, so nothing was moved
        plan = json.loads(plan_file.read_text(encoding="utf-8"))
        incoming = Path(plan["incoming"])
        for name, digest in plan["files"].items():
            source, target = incoming / name, pending / "incoming" / name
            if source.is_file() and sha256(source) == digest:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(source, target)
    final = pending.with_name(pending.name.removeprefix(PENDING))
    pending.rename(final)
    return final


def _readme(batch: Batch, reason: str, plan: dict) -> str:
    return (
        f"Batch {batch.id} was rejected on {now()} and moved here from {batch.incoming}.\n\n"
        f"Reason:\n{reason}\n\n"
        "validation.json and validation.html hold the validation report. The rejected files are\n"
        "under incoming/, with their paths in the incoming folder; nothing was deleted and the\n"
        "dataset did not change. To submit them again, fix them and copy them back.\n\n"
        "Files:\n" + "".join(f"  {name}\n" for name in plan["files"])
    )
