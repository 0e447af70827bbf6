"""Markdown rendering of result tables, for MLflow text artifacts and Prefect artifacts."""

from __future__ import annotations

import pandas as pd


def markdown_table(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-style table; index as first column, floats rounded, NaN left blank."""

    def cell(value: object) -> str:
        if pd.api.types.is_scalar(value) and pd.isna(value):
            return ""
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    header = [str(table.index.name or "")] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.astype(object).itertuples():  # per-value types, unlike iterrows()
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)
