"""Cache writes on a full disk: one clear error, and nothing left behind."""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from glasses import cache_files
from glasses.cache_files import CacheFull, load_array, store_array
from glasses.results import ResultStore

SHAPE = (64, 1024, 16)  # float32: 4.2 MB


def rows() -> Iterator[np.ndarray]:
    for start in range(0, SHAPE[0], 8):
        yield np.full((8, *SHAPE[1:]), start, dtype=np.float32)


class FillsUp:
    """A file whose disk (or quota) runs out after `room` bytes, as another writer could make
    it after the free-space check: the write fails with `code`."""

    def __init__(self, stream, room: int, code: int):
        self.stream, self.room, self.code = stream, room, code

    def write(self, data: bytes) -> int:
        if self.stream.tell() + len(data) > self.room:
            raise OSError(self.code, os.strerror(self.code))
        return self.stream.write(data)

    def tell(self) -> int:
        return self.stream.tell()

    def __enter__(self) -> FillsUp:
        return self

    def __exit__(self, *error) -> None:
        self.stream.close()


def assert_full(error: pytest.ExceptionInfo[CacheFull], folder: Path, needed: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert re.fullmatch(
        rf"cache folder {re.escape(str(folder))} has \d+\.\d MB free, needs {needed} MB; "
        "free space or set GLASSES_CACHE_DIR",
        message,
    )
    assert not list(folder.iterdir())  # no entry, no checksum, no temporary file


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_running_out_of_room_mid_write_is_cache_full(code, tmp_path, monkeypatch) -> None:
    opened = os.fdopen
    monkeypatch.setattr(
        cache_files.os, "fdopen", lambda handle, mode: FillsUp(opened(handle, mode), 10**6, code)
    )
    with pytest.raises(CacheFull) as error:
        store_array(tmp_path / "entry.npy", SHAPE, np.float32, rows())
    assert error.value.__cause__.errno == code
    assert_full(error, tmp_path, "4.2")


def test_too_little_room_is_refused_before_writing(tmp_path, monkeypatch) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=2_000_000))
    started = []

    def watched() -> Iterator[np.ndarray]:
        started.append(True)
        yield from rows()

    with pytest.raises(CacheFull) as error:
        store_array(tmp_path / "entry.npy", SHAPE, np.float32, watched())
    assert not started
    assert_full(error, tmp_path, "4.2")
    assert "has 2.0 MB free" in str(error.value)

    results = ResultStore(tmp_path / "results")
    with pytest.raises(CacheFull) as error:
        results.put("fold-a", {"weights": np.zeros(SHAPE, np.float32)})
    assert_full(error, results.folder, "4.2")


def test_an_entry_written_in_pieces_reads_back_whole(tmp_path) -> None:
    path = tmp_path / "entry.npy"
    store_array(path, SHAPE, np.float32, rows())
    stored, problem = load_array(path, SHAPE, np.float32)
    assert problem == ""
    np.testing.assert_array_equal(stored, np.concatenate(list(rows())))
