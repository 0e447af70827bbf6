"""Markdown rendering of result tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from glasses.tables import markdown_table, with_intervals


def test_header_separator_and_one_line_per_row() -> None:
    table = pd.DataFrame(
        {"accuracy": [0.81234, 0.9, np.nan], "name": ["a", "b", "c"]},
        index=pd.Index(["fold 1", "fold 2", "mean"], name="row"),
    )
    lines = markdown_table(table).split("\n")
    assert len(lines) == 2 + len(table)
    assert lines[0] == "| row | accuracy | name |"
    assert lines[1] == "|---|---|---|"
    assert lines[2] == "| fold 1 | 0.8123 | a |"
    assert lines[3] == "| fold 2 | 0.9000 | b |"
    assert lines[4] == "| mean |  | c |"  # NaN left blank


def test_unnamed_index_and_digits() -> None:
    table = pd.DataFrame({"x": [1.0 / 3]}, index=["only"])
    assert markdown_table(table, digits=2).split("\n") == [
        "|  | x |",
        "|---|---|",
        "| only | 0.33 |",
    ]


def test_every_line_has_the_same_number_of_cells() -> None:
    table = pd.DataFrame(np.random.default_rng(0).random((4, 5)), columns=list("abcde"))
    table.iloc[1, 2] = np.nan
    lines = markdown_table(table).split("\n")
    assert {line.count("|") for line in lines} == {7}


def test_floats_show_four_significant_digits() -> None:
    table = pd.DataFrame({"x": [0.012345678, 3.0e-5, 123.456, 0.5]}, index=list("abcd"))
    cells = [line.strip("| ").split(" | ")[1] for line in markdown_table(table).split("\n")[2:]]
    assert cells == ["0.01235", "3.000e-05", "123.5", "0.5000"]


def test_integer_columns_stay_integers() -> None:
    table = pd.DataFrame({"accuracy": [0.75], "epoch": [3]}, index=["fold 1"])
    assert markdown_table(table).split("\n")[2] == "| fold 1 | 0.7500 | 3 |"


def test_multi_index_levels_become_their_own_columns():
    table = pd.DataFrame(
        {"model": ["cnn", "scatnet"], "method": ["ig", "lime"], "score": [0.5, 0.25]}
    ).set_index(["model", "method"])
    lines = markdown_table(table, digits=2).splitlines()
    assert lines[0] == "| model | method | score |"
    assert lines[2] == "| cnn | ig | 0.50 |"


def test_intervals_fold_into_one_readable_column():
    table = pd.DataFrame(
        {"m": [0.5, float("nan")], "lo": [0.25, 0.0], "hi": [0.75, 0.0], "k": [1, 2]}
    )
    folded = with_intervals(table, {"mass": ("m", "lo", "hi")}, digits=2)
    assert list(folded.columns) == ["k", "mass"]
    assert folded["mass"].tolist() == ["0.50 [0.25, 0.75]", ""]
