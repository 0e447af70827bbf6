"""The result store: keys that change with what determines a result, entries that a crash or a
damaged disk cannot pass off."""

from __future__ import annotations

import numpy as np
import pytest

from glasses.cache_files import CacheWarning
from glasses.config import resolve_config
from glasses.results import ResultStore, rows_digest, training_settings, work_key


def test_keys_follow_what_determines_a_result() -> None:
    tiny = resolve_config("tiny")
    key = work_key("fold", settings=training_settings(tiny), rows=rows_digest(np.arange(4)), fold=0)
    assert key.startswith("fold-")
    same = resolve_config("tiny", {"runtime": {"workers": 1}, "xai": {"samples": 3}})
    assert (
        work_key("fold", settings=training_settings(same), rows=rows_digest(np.arange(4)), fold=0)
        == key
    )  # how it runs, and what later stages do, change nothing
    for other in (
        work_key("fold", settings=training_settings(tiny), rows=rows_digest(np.arange(4)), fold=1),
        work_key("fold", settings=training_settings(tiny), rows=rows_digest(np.arange(5)), fold=0),
        work_key(
            "fold",
            settings=training_settings(resolve_config("tiny", {"cnn": {"optimiser": {"lr": 1}}})),
            rows=rows_digest(np.arange(4)),
            fold=0,
        ),
    ):
        assert other != key


def test_store_reuses_and_recomputes_what_is_damaged(tmp_path) -> None:
    store = ResultStore(tmp_path / "results")
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"scores": np.arange(3)}

    first, reused = store.reuse_or_compute("fold-a", compute)
    assert not reused and len(calls) == 1
    again, reused = store.reuse_or_compute("fold-a", compute)
    assert reused and len(calls) == 1
    np.testing.assert_array_equal(again["scores"], first["scores"])
    assert sorted(p.name for p in store.folder.iterdir()) == ["fold-a.pkl", "fold-a.pkl.sha256"]

    store.path("fold-a").write_bytes(b"garbage")
    with pytest.warns(CacheWarning, match=r"fold-a\.pkl is damaged \(checksum mismatch\)"):
        _, reused = store.reuse_or_compute("fold-a", compute)
    assert not reused and len(calls) == 2
    assert store.get("fold-a") is not None  # rewritten whole
