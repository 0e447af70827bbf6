"""The cache layout: every path as it has always been spelled, so existing caches keep hitting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glasses.cache_layout import CacheFolderError, CacheLayout
from glasses.data.reference import DataRef
from tasks.resume import result_store


def test_paths_are_those_of_existing_caches(tmp_path) -> None:
    cache = CacheLayout(tmp_path)
    assert cache.synthetic(40, 20, 64, 7) == tmp_path / "synthetic" / "n40-g20-s64-seed7"
    assert cache.images("abc") == (
        tmp_path / "images" / "abc.npy",
        tmp_path / "images" / "abc.manifest.parquet",
    )
    assert cache.scattering("abc") == tmp_path / "scattering" / "abc.npy"
    assert cache.results == tmp_path / "results"
    data = DataRef(str(tmp_path), "abc", (1, 3, 8, 8))
    assert data.cache == cache
    assert result_store(data).folder == tmp_path / "results"


def test_the_folder_comes_from_the_environment_resolved(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GLASSES_CACHE_DIR", raising=False)
    assert CacheLayout.from_environment().root == tmp_path.resolve() / ".cache" / "glasses"
    monkeypatch.setenv("GLASSES_CACHE_DIR", "elsewhere")
    assert CacheLayout.from_environment().root == Path(tmp_path / "elsewhere").resolve()


def test_a_cache_folder_that_cannot_be_used_is_one_line_before_any_work(tmp_path) -> None:
    in_the_way = tmp_path / "cache"
    in_the_way.write_text("not a folder")
    with pytest.raises(CacheFolderError, match=f"cache folder {in_the_way} is a file; set GLASSES"):
        CacheLayout(in_the_way).make()
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        beneath = CacheLayout(read_only / "cache")
        if os.geteuid() == 0:  # root writes anyway: a file in the path's way is what stops it
            beneath = CacheLayout(in_the_way / "below")
        with pytest.raises(CacheFolderError, match="cannot be written .*set GLASSES_CACHE_DIR"):
            beneath.make()
    finally:
        read_only.chmod(0o700)
    fresh = CacheLayout(tmp_path / "new" / "cache")
    fresh.make()
    assert fresh.root.is_dir() and list(fresh.root.iterdir()) == []  # nothing left behind
