"""``screen_job.records`` (the JSON rows of a rank answer) equals the straightforward per-cell conversion."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from service.api.screen_job import records


def per_cell(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The reference: every cell of every row, NumPy scalars to Python, NaN/inf/NA/NaT to None."""
    out = []
    for row in frame.itertuples(index=False, name=None):
        rec = {}
        for col, value in zip(frame.columns, row, strict=True):
            if isinstance(value, np.generic):
                value = value.item()
            if (isinstance(value, float) and not math.isfinite(value)) or value is pd.NA or value is pd.NaT:
                value = None
            rec[str(col)] = value
        out.append(rec)
    return out


def test_records_equal_the_per_cell_conversion_for_every_column_kind() -> None:
    frame = pd.DataFrame(
        {
            "f": [1.5, np.nan, np.inf, -0.0],
            "i": np.array([1, 2, 3, 4], dtype=np.int64),
            "b": [True, False, True, False],
            "n": pd.array([1, None, 3, None], dtype="Int64"),
            "c": pd.Categorical(["ucb", "ucb", "ucb", "ucb"]),
            "o": np.array(["a", None, np.float64(2.5), np.nan], dtype=object),
            "s": ["x", "", "y", "z"],
            "t": pd.to_datetime(["2026-01-01", None, "2026-01-02", "2026-01-03"]),
        }
    )
    frame.attrs["ranked_by"] = "ucb"
    got, want = records(frame), per_cell(frame)
    assert got == want
    assert [type(v) for v in got[0].values()] == [type(v) for v in want[0].values()]
    assert got[1]["f"] is None and got[2]["f"] is None and got[1]["n"] is None and got[1]["o"] is None
    assert records(frame.iloc[:0]) == [] and records(frame[[]]) == [{}] * 4
