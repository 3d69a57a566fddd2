"""models.predictor.distinct_rows: which input rows are the same input (answered once)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.predictor import distinct_rows


def test_repeats_map_to_their_first_row() -> None:
    df = pd.DataFrame({"formula": ["A", "B", "A", "C", "B"], "cycles": [1.0, 2.0, 1.0, 3.0, 2.0]})
    found = distinct_rows(df)
    assert found is not None
    first, inverse = found
    assert first.tolist() == [0, 1, 3]
    assert inverse.tolist() == [0, 1, 0, 2, 1]
    assert df.iloc[first].iloc[inverse].reset_index(drop=True).equals(df)


def test_nan_matches_nan_but_signed_zero_type_and_other_cells_do_not() -> None:
    df = pd.DataFrame(
        {
            "formula": ["A"] * 6,
            "cycles": [np.nan, np.nan, 0.0, -0.0, 1.0, 1.0],
            "phase": [None, None, None, None, True, 1],
        }
    )
    found = distinct_rows(df)
    assert found is not None
    assert found[1].tolist() == [0, 0, 1, 2, 3, 4]
    mixed = pd.DataFrame({"formula": ["A", "A", "A"], "x": [0.0, -0.0, float("nan")]}, dtype=object)
    assert distinct_rows(mixed) is None  # object column: 0.0 and -0.0 differ too


def test_all_distinct_single_and_unhashable_rows_give_none() -> None:
    assert distinct_rows(pd.DataFrame({"formula": ["A", "B"]})) is None
    assert distinct_rows(pd.DataFrame({"formula": ["A"]})) is None
    assert distinct_rows(pd.DataFrame({"formula": ["A", "A"], "x": [[1], [1]]})) is None
