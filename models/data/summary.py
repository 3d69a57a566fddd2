"""Per-target summary numbers of a curated table (what `nascreen data summary` shows)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from models.targets import TargetName, get_target

_SOURCE_COLUMN = {
    TargetName.IONIC_CONDUCTIVITY: "source",
    TargetName.CAPACITY_RETENTION: "doi",
    TargetName.AVERAGE_VOLTAGE: "battery_id",
}


@dataclass(frozen=True)
class TableSummary:
    target: TargetName
    rows: int
    distinct_formulas: int
    na_rows: int
    sources: int
    value_min: float
    value_max: float
    unit: str


def _is_na_row(df: pd.DataFrame, target: TargetName) -> pd.Series:
    if target is TargetName.IONIC_CONDUCTIVITY:
        return df["mobile_ion"] == "Na"
    if target is TargetName.AVERAGE_VOLTAGE:
        return df["working_ion"] == "Na"
    return pd.Series(True, index=df.index)  # the retention database is all Na cathodes


def summarize_table(target: TargetName | str, df: pd.DataFrame) -> TableSummary:
    """Rows, distinct formulas, Na rows, distinct sources (DOIs / battery ids, ";"-lists split), range."""
    t = get_target(target)
    values = df[t.value_column].astype(float)
    sources = df[_SOURCE_COLUMN[t.name]].astype(str).str.split(";").explode().str.strip()
    return TableSummary(
        target=t.name,
        rows=len(df),
        distinct_formulas=int(df["formula"].nunique()),
        na_rows=int(_is_na_row(df, t.name).sum()),
        sources=int(sources[sources != ""].nunique()),
        value_min=float(values.min()) if len(values) else float("nan"),
        value_max=float(values.max()) if len(values) else float("nan"),
        unit=t.unit,
    )
