"""``screening.schema.with_columns`` equals assigning the columns one by one (names, order, dtypes)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from screening.schema import with_columns


def one_by_one(frame: pd.DataFrame, new: dict[str, object]) -> pd.DataFrame:
    out = frame.copy()
    for name, values in new.items():
        out[name] = values
    return out


def test_with_columns_equals_assigning_one_by_one() -> None:
    frame = pd.DataFrame({"formula": ["A", "B", "C"], "x": [1.0, 2.0, 3.0], "score": [0, 0, 0]})
    new = {
        "score": np.array([0.5, np.nan, 1.5]),  # replaced where it stands
        "rank": pd.array([1, None, 2], dtype="Int64"),
        "eligible": np.array([True, False, True]),
        "reason": np.array(["", "out of domain", ""], dtype=object),
        "ranked_by": pd.Categorical(["ucb"] * 3),
    }
    got, want = with_columns(frame, new), one_by_one(frame, new)
    pd.testing.assert_frame_equal(got, want)
    assert frame.columns.tolist() == ["formula", "x", "score"] and frame["score"].tolist() == [0, 0, 0]
    pd.testing.assert_frame_equal(with_columns(frame, {}), frame)
    assert with_columns(frame, {}) is not frame
