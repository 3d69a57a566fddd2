"""A stable content hash of a curated table (logged with every training run)."""

from __future__ import annotations

import hashlib

import pandas as pd


def dataset_hash(df: pd.DataFrame) -> str:
    """SHA-256 (first 16 hex digits) of the table's CSV text: column names, order, row order and values.

    The CSV text is written with fixed float formatting and no index, so the hash depends on content only
    (not on dtype backends or memory layout) and is equal before and after a CSV round trip.
    """
    text = df.to_csv(index=False, lineterminator="\n", float_format="%.10g")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
