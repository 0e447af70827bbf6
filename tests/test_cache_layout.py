"""The cache layout: every path as it has always been spelled, so existing caches keep hitting."""

from __future__ import annotations

from pathlib import Path

from glasses.cache_layout import CacheLayout
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
