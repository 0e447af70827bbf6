"""What the parent run shows first: a description and verdict that always fit an MLflow tag."""

from __future__ import annotations

from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from tasks.reporting import _as_tag


def test_long_text_is_cut_to_a_tag_and_says_where_the_rest_is() -> None:
    short = "ScatNet − CNN test balanced accuracy +0.0100"
    assert _as_tag(short, "see summary.md") == short
    cut = _as_tag("x" * 20_000, "the whole summary: summary.md")
    assert len(cut) <= MAX_TAG_VAL_LENGTH
    assert cut.endswith("… (the whole summary: summary.md)") and cut.startswith("xxx")
