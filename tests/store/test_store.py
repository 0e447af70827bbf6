"""The dataset store: versions by content, discovery, quarantine, crash safety and locking."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from glasses.data.images import fingerprint, scan_images
from glasses.data.sources import DataSourceError, read_manifest_csv
from glasses.store import DatasetError, DatasetLockedError, DatasetStore

SIZE = 32


def png(path: Path, seed: int) -> Path:
    """A tiny noise image; the seed makes its content (and hash) unique."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed + 2**20).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def class_folders(root: Path, seeds: dict[str, int]) -> Path:
    """`root/glasses/` and `root/no_glasses/`: seeds >= 0 go to glasses, negative ones not."""
    for folder in ("glasses", "no_glasses"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, seed in seeds.items():
        png(root / ("glasses" if seed >= 0 else "no_glasses") / name, seed)
    return root


def base_table(root: Path, count: int = 8) -> pd.DataFrame:
    rows = [
        {"path": str(png(root / f"b{i}.png", 1000 + i)), "label": i % 2, "group": f"g{i // 2}"}
        for i in range(count)
    ]
    return pd.DataFrame(rows)


def files(*roots: Path) -> list[bytes]:
    """Contents of every file under the roots: a move keeps the multiset, a delete does not."""
    return sorted(p.read_bytes() for root in roots for p in root.rglob("*") if p.is_file())


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    store = DatasetStore(tmp_path / "store")
    store.init_from(base_table(tmp_path / "base"))
    return store


# ---- versions ----------------------------------------------------------------------------------


def test_init_round_trip_reproduces_the_data(tmp_path, unchanged) -> None:
    table = base_table(tmp_path / "base")
    check = unchanged(tmp_path / "base")
    store = DatasetStore(tmp_path / "store")
    assert store.head() is None
    version = store.init_from(table)
    check()  # copied, not moved
    assert store.head() == version
    manifest = store.manifest(version)
    assert list(manifest.columns) == ["path", "label", "group", "batch"]
    assert all(Path(p).is_relative_to(store.root / "objects") for p in manifest["path"])
    images = scan_images(manifest, SIZE)
    assert images.fingerprint == version  # the version id names exactly this content
    original = scan_images(table, SIZE).manifest.set_index("sha256")
    for row in images.manifest.itertuples():
        assert (row.label, row.group) == tuple(original.loc[row.sha256, ["label", "group"]])


def test_version_id_is_content_derived_and_order_independent(tmp_path) -> None:
    table = base_table(tmp_path / "base")
    first = DatasetStore(tmp_path / "a").init_from(table)
    second = DatasetStore(tmp_path / "b").init_from(table.sample(frac=1, random_state=1))
    assert first == second
    relabelled = table.assign(label=1 - table["label"])
    assert DatasetStore(tmp_path / "c").init_from(relabelled) != first
    store = DatasetStore(tmp_path / "a")
    assert store.init_from(table) == first  # idempotent
    with pytest.raises(DatasetError, match="already holds version"):
        store.init_from(relabelled)


def test_init_from_a_csv_source_keeps_groups(csv_data, tmp_path) -> None:
    store = DatasetStore(tmp_path / "store")
    version = store.init_from(read_manifest_csv(csv_data.csv))
    manifest = store.manifest(version)
    assert len(manifest) == len(csv_data.table)
    assert sorted(manifest["group"]) == sorted(csv_data.table["group"])


def test_old_versions_stay_reproducible_after_newer_commits(store, tmp_path) -> None:
    first = store.head()
    before = store.manifest(first)
    versions = [first]
    for step in range(2):
        incoming = class_folders(tmp_path / f"in{step}", {"a.png": 10 * step, "b.png": -1 - step})
        versions.append(store.commit(store.discover(incoming)))
    assert len(set(versions)) == 3
    assert store.head() == versions[-1]
    pd.testing.assert_frame_equal(store.manifest(first), before)
    assert scan_images(store.manifest(first), SIZE).fingerprint == first
    assert [len(store.manifest(v)) for v in versions] == [8, 10, 12]


def test_manifest_refuses_unknown_or_tampered_versions(store) -> None:
    with pytest.raises(DatasetError, match="unknown dataset version"):
        store.manifest("0123456789abcdef")
    with pytest.raises(DatasetError, match="not a dataset version id"):
        store.manifest("../HEAD")
    csv = store.root / "versions" / f"{store.head()}.csv"
    csv.write_text(csv.read_text().replace(",0,", ",1,", 1))
    with pytest.raises(DatasetError, match="was modified"):
        store.manifest(store.head())


# ---- discovery ---------------------------------------------------------------------------------


def test_discover_finds_a_new_batch_and_leaves_incoming_alone(store, tmp_path, unchanged) -> None:
    incoming = class_folders(tmp_path / "incoming", {"g1.png": 1, "g2.png": 2, "n1.png": -1})
    check = unchanged(incoming)
    batch = store.discover(incoming)
    assert batch is not None and batch.labels_file is None
    assert sorted(Path(p).name for p in batch.table["path"]) == ["g1.png", "g2.png", "n1.png"]
    assert batch.id == fingerprint(batch.table["sha256"], batch.table["label"])
    assert batch.scan(SIZE).manifest["sha256"].tolist() == batch.table["sha256"].tolist()
    old = store.head()
    new = store.commit(batch)
    check()
    assert new != old and store.head() == new
    assert (store.manifest(new)["batch"] == batch.id).sum() == 3
    assert store.discover(incoming) is None  # accepted files left in place are not new


def test_recopied_batch_under_new_names_imports_nothing(store, tmp_path) -> None:
    incoming = class_folders(tmp_path / "incoming", {"g1.png": 1, "n1.png": -1})
    store.commit(store.discover(incoming))
    again = tmp_path / "again"
    for path in incoming.rglob("*.png"):
        target = again / path.parent.name / f"renamed-{path.stem}.PNG"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    assert store.discover(again) is None


def test_mixed_batch_returns_only_the_new_files(store, tmp_path) -> None:
    incoming = class_folders(tmp_path / "incoming", {"old.png": 1})
    store.commit(store.discover(incoming))
    class_folders(incoming, {"new1.png": 2, "new2.png": -2})
    batch = store.discover(incoming)
    assert sorted(Path(p).name for p in batch.table["path"]) == ["new1.png", "new2.png"]


def test_csv_incoming_and_idle_states(store, tmp_path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    assert store.discover(incoming) is None  # empty folder
    class_folders(incoming, {})
    assert store.discover(incoming) is None  # empty class folders: the idle state
    shutil.rmtree(incoming / "glasses")
    png(incoming / "loose.png", 5)
    with pytest.raises(DataSourceError, match="have no labels"):
        store.discover(incoming)
    (incoming / "labels.csv").write_text("path,label,group\nloose.png,1,p9\n")
    batch = store.discover(incoming)
    assert batch.labels_file == incoming.resolve() / "labels.csv"
    assert batch.table[["label", "group"]].values.tolist() == [[1, "p9"]]
    with pytest.raises(DataSourceError, match="does not exist|not a folder"):
        store.discover(tmp_path / "missing")
    with pytest.raises(DataSourceError, match="must not contain each other"):
        store.discover(store.root / "objects")


def test_conflicting_labels_in_a_batch_are_named_and_refused(store, tmp_path) -> None:
    incoming = class_folders(tmp_path / "incoming", {"a.png": 3})
    shutil.copy(incoming / "glasses" / "a.png", incoming / "no_glasses" / "a.png")
    batch = store.discover(incoming)
    with pytest.raises(DatasetError, match="cannot be imported") as refused:
        store.commit(batch)
    for folder, label in (("glasses", 1), ("no_glasses", 0)):
        assert f"{incoming / folder / 'a.png'} (label {label})" in str(refused.value)


def test_batch_scan_refuses_files_changed_since_discovery(store, tmp_path) -> None:
    incoming = class_folders(tmp_path / "incoming", {"a.png": 3, "b.png": -3})
    batch = store.discover(incoming)
    png(incoming / "glasses" / "a.png", 99)
    with pytest.raises(DatasetError, match="changed since discovery"):
        batch.scan(SIZE)
    with pytest.raises(DatasetError, match="changed since discovery"):
        store.commit(batch)
    assert len(store.manifest(store.head())) == 8


# ---- quarantine --------------------------------------------------------------------------------


def test_quarantine_moves_exactly_the_batch_and_deletes_nothing(store, tmp_path) -> None:
    incoming = class_folders(tmp_path / "incoming", {"old.png": 1})
    store.commit(store.discover(incoming))
    class_folders(incoming, {"new.png": 2, "other.png": -2})
    (incoming / "glasses" / "corrupt.png").write_bytes(b"not an image")
    (incoming / "notes.txt").write_text("the user's own file")
    head, before = store.head(), files(incoming)
    batch = store.discover(incoming)
    assert not batch.scan(SIZE).manifest["readable"].all()  # what makes the caller reject it
    folder = store.quarantine(batch, '{"success": false}', "<html>report</html>", "corrupt file")
    assert files(incoming, folder / "incoming") == before
    moved = sorted(str(p.relative_to(folder / "incoming")) for p in folder.rglob("*.png"))
    assert moved == ["glasses/corrupt.png", "glasses/new.png", "no_glasses/other.png"]
    left = sorted(str(p.relative_to(incoming)) for p in incoming.rglob("*") if p.is_file())
    assert left == ["glasses/old.png", "notes.txt"]
    assert (folder / "validation.json").read_text() == '{"success": false}'
    assert (folder / "validation.html").read_text() == "<html>report</html>"
    assert "corrupt file" in (folder / "README.txt").read_text()
    assert folder.name.endswith(batch.id) and store.head() == head
    assert store.discover(incoming) is None


def test_quarantine_takes_the_labels_csv_along(store, tmp_path) -> None:
    incoming = tmp_path / "incoming"
    png(incoming / "img" / "a.png", 7)
    png(incoming / "img" / "b.png", 8)
    (incoming / "labels.csv").write_text("path,label\nimg/a.png,1\nimg/b.png,2\n")
    batch = store.discover(incoming)
    folder = store.quarantine(batch, "{}", "", "label 2 is not a class")
    assert sorted(p.name for p in (folder / "incoming").rglob("*") if p.is_file()) == [
        "a.png",
        "b.png",
        "labels.csv",
    ]
    assert read_manifest_csv(folder / "incoming" / "labels.csv")["label"].tolist() == [1, 2]
    assert store.discover(incoming) is None


def test_interrupted_quarantine_is_completed_by_the_next_lock(store, tmp_path, monkeypatch) -> None:
    incoming = class_folders(tmp_path / "incoming", {"a.png": 4, "b.png": 5, "c.png": -4})
    before = files(incoming)
    batch = store.discover(incoming)
    move, calls = shutil.move, []

    def die_on_second_move(source, target):
        calls.append(source)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return move(source, target)

    monkeypatch.setattr(shutil, "move", die_on_second_move)
    with pytest.raises(KeyboardInterrupt):
        store.quarantine(batch, "{}", "", "bad")
    monkeypatch.setattr(shutil, "move", move)
    assert len(list(incoming.rglob("*.png"))) == 2  # half moved: must not be imported as is
    assert [p.name[:9] for p in store.quarantine_root.iterdir()] == [".pending-"]
    assert store.discover(incoming) is None  # the lock it takes finishes the quarantine first
    (folder,) = store.quarantine_root.iterdir()
    assert folder.name == f"{folder.name[:16]}-{batch.id}"
    assert len(list((folder / "incoming").rglob("*.png"))) == 3
    assert files(incoming, folder / "incoming") == before


# ---- crash safety and idempotence --------------------------------------------------------------


@pytest.mark.parametrize("crash_at", ["object", "version", "HEAD"])
def test_a_killed_commit_leaves_head_and_a_rerun_completes(
    store, tmp_path, monkeypatch, crash_at
) -> None:
    incoming = class_folders(tmp_path / "incoming", {"a.png": 6, "b.png": -6, "c.png": 7})
    old = store.head()
    replace = os.replace

    def crash(source, target):
        name = Path(target).name
        kind = "HEAD" if name == "HEAD" else "version" if name.endswith(".csv") else "object"
        if kind == crash_at:
            raise KeyboardInterrupt(f"killed while writing {name}")
        return replace(source, target)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.commit(store.discover(incoming))
    monkeypatch.setattr(os, "replace", replace)
    assert store.head() == old
    assert len(store.manifest(old)) == 8
    batch = store.discover(incoming)  # the batch is still new
    assert len(batch.table) == 3
    new = store.commit(batch)
    assert store.head() == new
    assert scan_images(store.manifest(new), SIZE).fingerprint == new
    assert store.discover(incoming) is None


def test_a_damaged_leftover_object_is_rewritten_not_reused(store, tmp_path) -> None:
    """An object written without fsync before a power cut may be garbage; it is never trusted."""
    batch = store.discover(class_folders(tmp_path / "incoming", {"a.png": 11, "b.png": -11}))
    sha256 = batch.table["sha256"].iloc[0]
    leftover = store.root / "objects" / sha256[:2] / f"{sha256}.png"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"torn write")
    version = store.commit(batch)
    assert scan_images(store.manifest(version), SIZE).fingerprint == version


def test_committing_the_same_batch_twice_gives_one_version(store, tmp_path) -> None:
    batch = store.discover(class_folders(tmp_path / "incoming", {"a.png": 8, "b.png": -8}))
    first = store.commit(batch)
    assert store.commit(batch) == first
    assert len(list((store.root / "versions").glob("*.csv"))) == 2  # init + this batch


def test_stage_publishes_nothing_until_publish(store, tmp_path) -> None:
    old = store.head()
    batch = store.discover(class_folders(tmp_path / "incoming", {"a.png": 9, "b.png": -9}))
    staged = store.stage(batch)
    assert store.head() == old and len(store.manifest(staged)) == 10
    assert store.discover(tmp_path / "incoming").id == batch.id  # still to be imported
    store.publish(staged)
    assert store.head() == staged
    with pytest.raises(DatasetError, match="lacks 2 image"):
        store.publish(old)  # HEAD only grows


# ---- locking -----------------------------------------------------------------------------------


def test_a_second_lock_fails_clearly(store) -> None:
    other = DatasetStore(store.root)
    with store.lock():
        with store.lock():  # re-entrant for its holder
            pass
        with pytest.raises(
            DatasetLockedError, match=f"another import is running .*pid {os.getpid()}"
        ):
            other.publish(store.head())
        started = time.monotonic()
        with pytest.raises(DatasetLockedError), other.lock(timeout=0.3):
            pass
        assert time.monotonic() - started >= 0.3
    with other.lock():
        pass


def test_lock_waits_for_another_process(store) -> None:
    holder = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, b'pid %d' % os.getpid())\n"
        "print('locked', flush=True)\n"
        "time.sleep(0.5)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", holder, str(store.root / ".lock")], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(DatasetLockedError, match=f"pid {process.pid}"):
            store.publish(store.head())
        with store.lock(timeout=10):
            assert time.monotonic() - started > 0.3  # acquired once the other process let go
    assert process.returncode == 0
