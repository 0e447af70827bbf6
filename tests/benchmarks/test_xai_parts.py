"""The XAI stage's parts, timed: every call the stage makes, once, and totals that add up."""

from __future__ import annotations

import pytest

from benchmarks.xai_parts import measure, summary
from glasses.config import resolve_config


def test_every_method_is_timed_and_the_checked_ones_are_checked_and_scored(tmp_path) -> None:
    config = resolve_config("tiny", {"xai": {"sample_methods": ("ig", "lime")}})
    parts = measure(config, tmp_path, ["cnn"], ["ig", "ig_random", "lime"])
    timed = parts.groupby("part")["method"].apply(list).to_dict()
    assert timed["explain"] == ["ig", "ig_random", "lime"]
    for part in ("randomisation", "localisation", "deletion"):
        assert timed[part] == ["ig", "lime"]
    assert (parts[["cpu_s", "wall_s"]] >= 0).all().all()
    table = summary(parts)
    assert table.loc["total", "both"] == pytest.approx(parts["cpu_s"].sum())
