"""The curated-tables summary in data/README.md states what the committed curated tables hold.

The table is written by hand when data change; this test recomputes its rows, distinct formulas, Na rows and
source counts from the committed CSVs, so a data change that leaves the README behind fails here (it did:
the README said 816 retention rows and 421 conductivity sources when the tables held 817 and 433)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import models

DATA = Path(models.__file__).resolve().parents[1] / "data"

# README label -> (curated file, mobile-ion column or None when all rows are Na, source column)
TABLES = {
    "ionic conductivity": ("ionic_conductivity.csv", "mobile_ion", "source"),
    "capacity retention": ("capacity_retention.csv", None, "doi"),
    "average voltage": ("average_voltage.csv", "working_ion", "battery_id"),
}


def _leading_int(cell: str) -> int:
    match = re.match(r"\s*(\d+)", cell)
    assert match, f"no leading number in README cell {cell!r}"
    return int(match.group(1))


def _readme_rows() -> dict[str, list[str]]:
    rows = {}
    for line in (DATA / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] in TABLES:
            rows[cells[0]] = cells
    return rows


@pytest.mark.parametrize("target", sorted(TABLES))
def test_readme_table_matches_the_curated_csv(target: str):
    readme = _readme_rows()
    assert target in readme, f"data/README.md has no curated-table row for {target!r}"
    _, file, rows_cell, formulas_cell, na_cell, sources_cell, _ = readme[target]
    name, ion_column, source_column = TABLES[target]
    assert file == f"`curated/{name}`"
    table = pd.read_csv(DATA / "curated" / name, dtype=str, keep_default_na=False)
    n_na = len(table) if ion_column is None else int((table[ion_column] == "Na").sum())
    stated = (_leading_int(rows_cell), _leading_int(formulas_cell), _leading_int(na_cell))
    assert stated == (len(table), table["formula"].nunique(), n_na), f"{target}: README {stated}"
    assert _leading_int(sources_cell) == table[source_column].nunique(), f"{target}: README {sources_cell!r}"
