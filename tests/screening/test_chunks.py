"""Chunk sub-ranges (the Ray executor's unit of load balancing) and merging their results back."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from chunk_scorers import arithmetic_chunk

from screening.chunks import ChunkResult, merge_results, split_range


@pytest.mark.parametrize(
    ("start", "stop", "max_size", "expected"),
    [
        (0, 10, 10, [(0, 10)]),
        (0, 10, 20, [(0, 10)]),
        (5, 5, 3, [(5, 5)]),
        (0, 10, 4, [(0, 3), (3, 6), (6, 10)]),
        (100, 150, 12, [(100, 110), (110, 120), (120, 130), (130, 140), (140, 150)]),
    ],
)
def test_split_range_golden(start: int, stop: int, max_size: int, expected: list[tuple[int, int]]) -> None:
    assert split_range(start, stop, max_size) == expected


@pytest.mark.parametrize("size", [1, 7, 24, 25, 26, 99, 1000])
@pytest.mark.parametrize("max_size", [1, 5, 25])
def test_split_range_covers_the_range_in_near_equal_parts(size: int, max_size: int) -> None:
    parts = split_range(40, 40 + size, max_size)
    assert parts[0][0] == 40 and parts[-1][1] == 40 + size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    sizes = [b - a for a, b in parts]
    assert max(sizes) <= max_size and max(sizes) - min(sizes) <= 1
    assert len(parts) == -(-size // max_size)


def test_split_range_rejects_a_non_positive_size() -> None:
    with pytest.raises(ValueError, match="max_size must be >= 1"):
        split_range(0, 10, 0)


def test_merged_parts_equal_the_whole_chunk() -> None:
    whole = arithmetic_chunk(100, 150)
    merged = merge_results([arithmetic_chunk(a, b) for a, b in split_range(100, 150, 12)])
    pd.testing.assert_frame_equal(merged.scored, whole.scored, check_exact=True)
    pd.testing.assert_frame_equal(merged.rejected, whole.rejected, check_exact=True)


def test_empty_parts_do_not_change_column_dtypes() -> None:
    full = arithmetic_chunk(0, 20)
    empty = ChunkResult(scored=pd.DataFrame(columns=full.scored.columns), rejected=full.rejected.iloc[0:0])
    merged = merge_results([empty, full, empty])
    pd.testing.assert_frame_equal(merged.scored, full.scored, check_exact=True)
    assert merge_results([empty, empty]).scored.empty


def test_merge_results_needs_a_part() -> None:
    with pytest.raises(ValueError, match="at least one part"):
        merge_results([])
