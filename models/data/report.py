"""The curation report: one row per raw row that curation dropped, merged, filled or flagged, with a reason.

Curation never loses a row silently: every raw row either reaches the curated table unchanged or is named
here with what happened to it and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

REPORT_COLUMNS = ["target", "dataset", "raw_row", "formula_raw", "action", "reason", "detail"]

DROPPED = "dropped"
MERGED = "merged"
FILLED = "filled"
FLAGGED = "flagged"


@dataclass(frozen=True)
class CurationResult:
    """A curated table and the report of what curation did to the raw rows."""

    table: pd.DataFrame
    report: pd.DataFrame


def report_rows(
    target: str,
    dataset: str,
    raw_rows: pd.Series,
    formula_raw: pd.Series,
    action: str,
    reason: str,
    detail: str | pd.Series = "",
) -> pd.DataFrame:
    """Report entries for a block of raw rows sharing one action and reason; `detail` may vary per row.

    The reason is a stable category (what the summary counts); the detail carries the row's specifics
    (the parser's message, the temperature, the battery kept).
    """
    n = len(raw_rows)
    details = detail.astype(str).to_numpy() if isinstance(detail, pd.Series) else [detail] * n
    return pd.DataFrame(
        {
            "target": [target] * n,
            "dataset": [dataset] * n,
            "raw_row": raw_rows.astype(int).to_numpy(),
            "formula_raw": formula_raw.astype(str).to_numpy(),
            "action": [action] * n,
            "reason": [reason] * n,
            "detail": details,
        },
        columns=REPORT_COLUMNS,
    )


def concat_reports(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Join report blocks into one report with the standard columns (empty blocks allowed)."""
    kept = [p for p in parts if len(p)]
    if not kept:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REPORT_COLUMNS})
    out = pd.concat(kept, ignore_index=True)
    return out[REPORT_COLUMNS]


def summarize_report(report: pd.DataFrame) -> pd.DataFrame:
    """Counts per target, dataset, action and reason (the table the README and CLI show)."""
    if report.empty:
        return pd.DataFrame(columns=["target", "dataset", "action", "reason", "rows"])
    counts = (
        report.groupby(["target", "dataset", "action", "reason"], sort=True).size().reset_index(name="rows")
    )
    return counts
