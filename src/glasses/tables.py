"""Markdown rendering of result tables, for MLflow text artifacts and Prefect artifacts."""

from __future__ import annotations

import pandas as pd

# Floats as tables show them: 4 significant digits, trailing zeros kept (0.9000, 0.01235,
# 3.000e-05). The values logged as metrics stay exact; only their display is rounded.
FLOAT_FORMAT = "%#.4g"


def markdown_table(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-style table; index levels as the first columns, floats to `digits` significant
    digits, NaN blank."""

    def cell(value: object) -> str:
        if pd.api.types.is_scalar(value) and pd.isna(value):
            return ""
        return f"{value:#.{digits}g}" if isinstance(value, float) else str(value)

    names = [str(name or "") for name in table.index.names]
    frame = table.reset_index(names=[f"level_{i}" for i in range(len(names))])
    header = names + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in frame.astype(object).itertuples(index=False):  # per-value types, not iterrows()
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def with_intervals(
    table: pd.DataFrame, columns: dict[str, tuple[str, str, str]], digits: int = 3
) -> pd.DataFrame:
    """Folds (mean, low, high) column triples into one readable "mean [low, high]" column each;
    other columns are kept as they are."""
    folded = table.copy()
    for name, (mean, low, high) in columns.items():
        folded[name] = [
            "" if pd.isna(m) else f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
            for m, lo, hi in zip(table[mean], table[low], table[high], strict=True)
        ]
        folded = folded.drop(columns=[mean, low, high])
    return folded
